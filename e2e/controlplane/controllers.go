package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/spf13/pflag"
	kcmapp "k8s.io/kubernetes/cmd/kube-controller-manager/app"
	kcmoptions "k8s.io/kubernetes/cmd/kube-controller-manager/app/options"
	schedapp "k8s.io/kubernetes/cmd/kube-scheduler/app"
	schedoptions "k8s.io/kubernetes/cmd/kube-scheduler/app/options"
)

// disabledControllers are the controllers that only make sense with kubelets
// (or clouds) behind the nodes. Everything else kube-controller-manager runs
// by default stays on.
var disabledControllers = []string{
	"node-lifecycle-controller", // would mark our kubelet-less nodes NotReady and evict
	"node-ipam-controller",
	"taint-eviction-controller",
	"device-taint-eviction-controller",
	"persistentvolume-attach-detach-controller",
}

// startControllerManager runs kube-controller-manager in-process against the
// API server described by kubeconfig. Secure serving and leader election are
// off, so it opens no port.
func startControllerManager(ctx context.Context, kubeconfig string, pki pkiFiles) (<-chan error, error) {
	s, err := kcmoptions.NewKubeControllerManagerOptions()
	if err != nil {
		return nil, err
	}
	all, disabled, aliases := kcmapp.KnownControllers(), kcmapp.ControllersDisabledByDefault(), kcmapp.ControllerAliases()
	named := s.Flags(all, disabled, aliases)
	fs := pflag.NewFlagSet("kube-controller-manager", pflag.ContinueOnError)
	for _, f := range named.FlagSets {
		fs.AddFlagSet(f)
	}
	controllers := "*"
	for _, c := range disabledControllers {
		controllers += ",-" + c
	}
	args := []string{
		"--kubeconfig=" + kubeconfig,
		"--controllers=" + controllers,
		"--use-service-account-credentials=false",
		"--service-account-private-key-file=" + pki.SAPrivateKey,
		"--root-ca-file=" + pki.CACert,
		"--cluster-signing-cert-file=" + pki.CACert,
		"--cluster-signing-key-file=" + pki.CAKey,
		"--leader-elect=false",
		"--secure-port=0",
		"--kube-api-qps=200",
		"--kube-api-burst=400",
		"--profiling=false",
	}
	if err := fs.Parse(args); err != nil {
		return nil, fmt.Errorf("kube-controller-manager flags: %w", err)
	}
	s.ParsedFlags = &named
	config, err := s.Config(ctx, all, disabled, aliases)
	if err != nil {
		return nil, fmt.Errorf("kube-controller-manager config: %w", err)
	}
	done := make(chan error, 1)
	go func() {
		done <- kcmapp.Run(ctx, config.Complete())
	}()
	return done, nil
}

// startScheduler runs kube-scheduler in-process, without leader election or
// a serving port.
func startScheduler(ctx context.Context, kubeconfig string) (<-chan error, error) {
	opts := schedoptions.NewOptions()
	fs := pflag.NewFlagSet("kube-scheduler", pflag.ContinueOnError)
	for _, f := range opts.Flags.FlagSets {
		fs.AddFlagSet(f)
	}
	args := []string{
		"--kubeconfig=" + kubeconfig,
		"--leader-elect=false",
		"--secure-port=0",
		"--profiling=false",
	}
	if err := fs.Parse(args); err != nil {
		return nil, fmt.Errorf("kube-scheduler flags: %w", err)
	}
	cc, sched, err := schedapp.Setup(ctx, opts)
	if err != nil {
		return nil, fmt.Errorf("kube-scheduler setup: %w", err)
	}
	done := make(chan error, 1)
	go func() {
		err := schedapp.Run(ctx, cc, sched)
		// Without leader election Run always ends with an error once its
		// context is cancelled; that is a normal stop.
		if err != nil && ctx.Err() != nil && strings.Contains(err.Error(), "finished without leader elect") {
			err = nil
		}
		done <- err
	}()
	return done, nil
}
