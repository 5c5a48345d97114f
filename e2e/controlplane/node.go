package main

import (
	"context"
	"os"

	"k8s.io/component-base/cli"
	_ "k8s.io/component-base/logs/json/register"          // JSON log format, as the kubelet binary has it
	_ "k8s.io/component-base/metrics/prometheus/clientgo" // client metrics, as the upstream binaries register
	_ "k8s.io/component-base/metrics/prometheus/version"  // version metric
	proxyapp "k8s.io/kubernetes/cmd/kube-proxy/app"
	kubeletapp "k8s.io/kubernetes/cmd/kubelet/app"
)

// runKubelet runs the upstream kubelet command (k8s.io/kubernetes/cmd/kubelet/app) with args, exactly
// as the kubelet binary's main does, and returns its exit code. It never returns on success while the
// kubelet runs; SIGTERM ends it.
func runKubelet(args []string) int {
	cmd := kubeletapp.NewKubeletCommand(context.Background())
	cmd.SetArgs(args)
	return cli.Run(cmd)
}

// runKubeProxy runs the upstream kube-proxy command (k8s.io/kubernetes/cmd/kube-proxy/app) with args.
func runKubeProxy(args []string) int {
	cmd := proxyapp.NewProxyCommand()
	cmd.SetArgs(args)
	return cli.Run(cmd)
}

// exitWith flushes nothing of ours (the components flush their own logs) and exits with code.
func exitWith(code int) {
	os.Exit(code)
}
