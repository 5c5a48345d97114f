// Command argocd is Argo CD v3 (the upstream code, not a fake) with only the roles Ferry's sandbox runs:
// the application controller, the repo-server and git's askpass helper. Like upstream's cmd/main.go it
// chooses the role from argv[0] or ARGOCD_BINARY_NAME; the API server, UI, CLI, Dex and the other
// controllers are left out so that a cold build compiles far fewer packages.
package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"
	"k8s.io/klog/v2"

	appcontroller "github.com/argoproj/argo-cd/v3/cmd/argocd-application-controller/commands"
	gitaskpass "github.com/argoproj/argo-cd/v3/cmd/argocd-git-ask-pass/commands"
	reposerver "github.com/argoproj/argo-cd/v3/cmd/argocd-repo-server/commands"
	"github.com/argoproj/argo-cd/v3/common"
	"github.com/argoproj/argo-cd/v3/util/log"
)

func init() {
	// As upstream: klog follows the configured log level and format.
	klog.SetLogger(log.NewLogrusLogger(log.NewWithCurrentConfig()))
}

func main() {
	// Upstream's main calls grpc.DisableSRVLookups, which panics unless grpc's grpclb balancer turned the
	// lookups on: upstream links grpclb (through roles left out here), this binary does not, so the
	// lookups stay off (grpc's default) and there is nothing to turn off.

	role := filepath.Base(os.Args[0])
	if val := os.Getenv("ARGOCD_BINARY_NAME"); val != "" {
		role = val
	}
	var command *cobra.Command
	switch role {
	case common.CommandApplicationController:
		command = appcontroller.NewCommand()
	case common.CommandRepoServer:
		command = reposerver.NewCommand()
	case common.CommandGitAskPass:
		command = gitaskpass.NewCommand()
	default:
		fmt.Fprintf(os.Stderr, "argocd: unknown role %q (set ARGOCD_BINARY_NAME to %s, %s or %s)\n", role,
			common.CommandApplicationController, common.CommandRepoServer, common.CommandGitAskPass)
		os.Exit(2)
	}
	if err := command.Execute(); err != nil {
		os.Exit(1)
	}
}
