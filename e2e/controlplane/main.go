// Command controlplane runs a real Kubernetes control plane (etcd,
// kube-apiserver, kube-controller-manager and optionally kube-scheduler) in
// one process, for end-to-end tests; the same binary also runs the upstream
// kubelet and kube-proxy (subcommands) for the sandbox's real nodes. See README.md.
package main

import (
	"fmt"
	"os"
	"strings"
)

const usage = `Usage:
  controlplane serve --data-dir DIR [--port N] [--node NAME ...] [--scheduler] [--fake-kubelet] [--v N]
  controlplane token --kubeconfig FILE --namespace NS --serviceaccount SA [--duration 1h] [--create] [--cluster-admin]
  controlplane kubelet KUBELET-FLAGS...      (the upstream kubelet, k8s.io/kubernetes/cmd/kubelet)
  controlplane kube-proxy KUBE-PROXY-FLAGS... (the upstream kube-proxy, k8s.io/kubernetes/cmd/kube-proxy)

Run "controlplane serve --help" or "controlplane token --help" for the flags.
`

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "serve":
		err = runServe(os.Args[2:])
	case "token":
		err = runToken(os.Args[2:])
	case "kubelet":
		exitWith(runKubelet(os.Args[2:]))
	case "kube-proxy":
		exitWith(runKubeProxy(os.Args[2:]))
	case "help", "-h", "--help":
		fmt.Fprint(os.Stdout, usage)
		return
	default:
		fmt.Fprintf(os.Stderr, "controlplane: unknown command %q\n\n%s", os.Args[1], usage)
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "controlplane: error: %s\n", oneLine(err.Error()))
		os.Exit(1)
	}
}

func oneLine(s string) string {
	s = strings.TrimSpace(s)
	s = strings.ReplaceAll(s, "\r", "")
	return strings.Join(strings.Fields(strings.ReplaceAll(s, "\n", "; ")), " ")
}
