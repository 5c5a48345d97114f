package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/spf13/pflag"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/klog/v2"
)

type serveOptions struct {
	dataDir        string
	port           int
	nodes          []string
	scheduler      bool
	fakeKubelet    bool
	verbosity      int
	startupTimeout time.Duration
	// bindAddress is where the API server listens (127.0.0.1 unless a real node in another network
	// namespace must reach it); advertiseAddress is the address it advertises (defaults to bindAddress,
	// or 127.0.0.1 when that is unspecified).
	bindAddress      string
	advertiseAddress string
	serviceCIDR      string
	provisionerDir   string
}

var startTime = time.Now()

func logf(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "controlplane: [%6.2fs] %s\n", time.Since(startTime).Seconds(), fmt.Sprintf(format, args...))
}

func runServe(args []string) error {
	var o serveOptions
	fs := pflag.NewFlagSet("serve", pflag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(os.Stderr, "Usage: controlplane serve --data-dir DIR [flags]\n\n")
		fs.PrintDefaults()
	}
	fs.StringVar(&o.dataDir, "data-dir", "", "directory for etcd data, certificates and the kubeconfig (required; reused if present)")
	fs.IntVar(&o.port, "port", 0, "API server port on 127.0.0.1 (0: pick a free one)")
	fs.StringSliceVar(&o.nodes, "node", nil, "create a Ready Node with this name (repeatable, or comma-separated)")
	fs.BoolVar(&o.scheduler, "scheduler", false, "also run kube-scheduler")
	fs.BoolVar(&o.fakeKubelet, "fake-kubelet", false, "report pods bound to --node nodes as Running and Ready (no container runs)")
	fs.IntVar(&o.verbosity, "v", 0, "log verbosity: 0 shows only this tool's progress, >=1 adds component logs at that klog level")
	fs.DurationVar(&o.startupTimeout, "startup-timeout", 3*time.Minute, "give up if not ready within this time")
	fs.StringVar(&o.bindAddress, "bind-address", "127.0.0.1", "address the API server listens on (0.0.0.0: every address, for real nodes in other network namespaces)")
	fs.StringVar(&o.advertiseAddress, "advertise-address", "", "address the API server advertises (default: --bind-address, or 127.0.0.1 when that is 0.0.0.0)")
	fs.StringVar(&o.serviceCIDR, "service-cluster-ip-range", defaultServiceCIDR, "the Service (ClusterIP) range; the kubernetes Service gets its first address")
	fs.StringVar(&o.provisionerDir, "hostpath-provisioner-dir", "", "run a hostPath provisioner for StorageClass "+provisionerClass+" (made the default class) that makes each PV a directory under this one")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return nil
		}
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	if o.dataDir == "" {
		return fmt.Errorf("--data-dir is required")
	}
	if net.ParseIP(o.bindAddress) == nil {
		return fmt.Errorf("--bind-address %q is not an IP address", o.bindAddress)
	}
	if o.advertiseAddress == "" {
		o.advertiseAddress = o.bindAddress
		if net.ParseIP(o.bindAddress).IsUnspecified() {
			o.advertiseAddress = "127.0.0.1"
		}
	}
	if net.ParseIP(o.advertiseAddress) == nil {
		return fmt.Errorf("--advertise-address %q is not an IP address", o.advertiseAddress)
	}
	serviceIP, err := firstServiceIP(o.serviceCIDR)
	if err != nil {
		return err
	}
	if o.provisionerDir != "" {
		if o.provisionerDir, err = filepath.Abs(o.provisionerDir); err != nil {
			return err
		}
	}
	dir, err := filepath.Abs(o.dataDir)
	if err != nil {
		return err
	}
	o.dataDir = dir
	setupLogging(o.verbosity)
	defer klog.Flush()
	// Loopback clients of the components should not print API warnings.
	rest.SetDefaultWarningHandler(rest.NoWarnings{})

	sigCtx, stopSignals := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stopSignals()

	cp := &controlPlane{opts: o, serviceIP: serviceIP}
	err = cp.start(sigCtx)
	if err != nil {
		cp.stop()
		if sigCtx.Err() != nil {
			return fmt.Errorf("interrupted during start-up: %w", err)
		}
		return err
	}
	fmt.Fprintf(os.Stdout, "READY %s %s\n", cp.server, cp.kubeconfig)
	os.Stdout.Sync()
	logf("ready in %.1fs", time.Since(startTime).Seconds())

	var runErr error
	select {
	case <-sigCtx.Done():
		logf("signal received, shutting down")
	case err := <-cp.apiDone:
		cp.apiDone = nil
		runErr = fmt.Errorf("kube-apiserver stopped: %v", err)
	case err := <-cp.kcmDone:
		cp.kcmDone = nil
		runErr = fmt.Errorf("kube-controller-manager stopped: %v", err)
	case err := <-cp.schedDone:
		cp.schedDone = nil
		runErr = fmt.Errorf("kube-scheduler stopped: %v", err)
	case err := <-cp.etcd.etcd.Err():
		runErr = fmt.Errorf("etcd stopped: %v", err)
	}
	cp.stop()
	if runErr == nil {
		logf("stopped")
	}
	return runErr
}

// setupLogging makes klog (used by every Kubernetes component) silent unless
// --v is given, in which case it writes to stderr at that verbosity.
func setupLogging(verbosity int) {
	kfs := flag.NewFlagSet("klog", flag.ContinueOnError)
	klog.InitFlags(kfs)
	if verbosity <= 0 {
		_ = kfs.Set("logtostderr", "false")
		_ = kfs.Set("alsologtostderr", "false")
		_ = kfs.Set("stderrthreshold", "FATAL")
		klog.SetOutput(io.Discard)
		return
	}
	_ = kfs.Set("logtostderr", "true")
	_ = kfs.Set("v", strconv.Itoa(verbosity))
}

type controlPlane struct {
	opts       serveOptions
	serviceIP  string
	pki        pkiFiles
	etcd       *embeddedEtcd
	server     string
	kubeconfig string

	apiCancel  context.CancelFunc
	apiDone    <-chan error
	ctrlCancel context.CancelFunc
	kcmDone    <-chan error
	schedDone  <-chan error
}

func (cp *controlPlane) start(sigCtx context.Context) error {
	o := cp.opts
	ctx, cancel := context.WithTimeout(sigCtx, o.startupTimeout)
	defer cancel()

	if err := os.MkdirAll(o.dataDir, 0o755); err != nil {
		return err
	}
	cp.pki = newPKIFiles(o.dataDir)
	cp.pki.extraIPs = []net.IP{net.ParseIP(cp.serviceIP), net.ParseIP(o.advertiseAddress)}
	if err := cp.pki.ensure(); err != nil {
		return fmt.Errorf("generate certificates: %w", err)
	}

	// Claim the API server's port first, so a busy --port fails at once.
	ln, err := net.Listen("tcp", net.JoinHostPort(o.bindAddress, strconv.Itoa(o.port)))
	if err != nil {
		return fmt.Errorf("listen on %s:%d: %w", o.bindAddress, o.port, err)
	}

	e, err := startEtcd(o.dataDir, o.verbosity)
	if err != nil {
		ln.Close()
		return err
	}
	cp.etcd = e
	logf("etcd serving on %s", e.clientURL)

	port := ln.Addr().(*net.TCPAddr).Port
	cp.server = fmt.Sprintf("https://127.0.0.1:%d", port)
	cp.kubeconfig = filepath.Join(o.dataDir, "kubeconfig")
	if err := writeAdminKubeconfig(cp.kubeconfig, cp.server, cp.pki); err != nil {
		ln.Close()
		return fmt.Errorf("write kubeconfig: %w", err)
	}

	apiCtx, apiCancel := context.WithCancel(context.Background())
	cp.apiCancel = apiCancel
	apiDone, err := startAPIServer(apiCtx, ln, e.clientURL, cp.pki, apiAddresses{
		bind: o.bindAddress, advertise: o.advertiseAddress, serviceCIDR: o.serviceCIDR,
	})
	if err != nil {
		ln.Close()
		return err
	}
	cp.apiDone = apiDone
	logf("kube-apiserver serving on %s", cp.server)

	restConfig, err := clientcmd.BuildConfigFromFlags("", cp.kubeconfig)
	if err != nil {
		return err
	}
	restConfig.QPS, restConfig.Burst = 100, 200
	client, err := kubernetes.NewForConfig(restConfig)
	if err != nil {
		return err
	}

	if err := cp.waitFor(ctx, "kube-apiserver /readyz", func(ctx context.Context) (bool, error) {
		body, err := client.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
		return err == nil && string(body) == "ok", nil
	}); err != nil {
		return err
	}
	logf("kube-apiserver ready")

	ctrlCtx, ctrlCancel := context.WithCancel(context.Background())
	cp.ctrlCancel = ctrlCancel
	kcmDone, err := startControllerManager(ctrlCtx, cp.kubeconfig, cp.pki)
	if err != nil {
		return err
	}
	cp.kcmDone = kcmDone
	logf("kube-controller-manager started")
	if o.scheduler {
		schedDone, err := startScheduler(ctrlCtx, cp.kubeconfig)
		if err != nil {
			return err
		}
		cp.schedDone = schedDone
		logf("kube-scheduler started")
	}

	for _, name := range o.nodes {
		name := name
		if err := cp.waitFor(ctx, "node "+name, func(ctx context.Context) (bool, error) {
			if err := ensureNode(ctx, client, name); err != nil {
				klog.V(1).InfoS("creating node", "node", name, "err", err)
				return false, nil
			}
			return true, nil
		}); err != nil {
			return err
		}
	}
	if o.provisionerDir != "" {
		if err := cp.waitFor(ctx, "StorageClass "+provisionerClass, func(ctx context.Context) (bool, error) {
			if err := ensureStorageClass(ctx, client); err != nil {
				klog.V(1).InfoS("creating the StorageClass", "err", err)
				return false, nil
			}
			return true, nil
		}); err != nil {
			return err
		}
		if err := runProvisioner(ctrlCtx, client, o.provisionerDir); err != nil {
			return err
		}
		logf("hostPath provisioner: StorageClass %s, volumes under %s", provisionerClass, o.provisionerDir)
	}
	if len(o.nodes) > 0 {
		if err := runPodAgent(ctrlCtx, client, o.nodes, o.fakeKubelet); err != nil {
			return err
		}
		logf("nodes created: %v", o.nodes)
	}

	if err := cp.waitFor(ctx, "default ServiceAccount and kube-root-ca.crt", func(ctx context.Context) (bool, error) {
		if _, err := client.CoreV1().ServiceAccounts(metav1.NamespaceDefault).Get(ctx, "default", metav1.GetOptions{}); err != nil {
			return false, nil
		}
		if _, err := client.CoreV1().ConfigMaps(metav1.NamespaceDefault).Get(ctx, "kube-root-ca.crt", metav1.GetOptions{}); err != nil {
			return false, nil
		}
		return true, nil
	}); err != nil {
		return err
	}
	return nil
}

// waitFor polls cond until it holds, failing early when a component dies or
// the start-up deadline (or a signal) ends ctx.
func (cp *controlPlane) waitFor(ctx context.Context, what string, cond func(context.Context) (bool, error)) error {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		callCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
		ok, err := cond(callCtx)
		cancel()
		if err != nil {
			return fmt.Errorf("waiting for %s: %w", what, err)
		}
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("timed out waiting for %s", what)
		case err := <-cp.apiDone:
			cp.apiDone = nil
			return fmt.Errorf("kube-apiserver stopped while waiting for %s: %v", what, err)
		case err := <-cp.kcmDone:
			cp.kcmDone = nil
			return fmt.Errorf("kube-controller-manager stopped while waiting for %s: %v", what, err)
		case err := <-cp.schedDone:
			cp.schedDone = nil
			return fmt.Errorf("kube-scheduler stopped while waiting for %s: %v", what, err)
		case <-tick.C:
		}
	}
}

// stop shuts the components down in reverse order of their start: the
// controllers first, then the API server, then etcd.
func (cp *controlPlane) stop() {
	wait := func(name string, ch <-chan error, timeout time.Duration) {
		if ch == nil {
			return
		}
		select {
		case err := <-ch:
			if err != nil {
				klog.V(1).InfoS("component stopped with error", "component", name, "err", err)
			}
		case <-time.After(timeout):
			logf("%s did not stop within %s", name, timeout)
		}
	}
	if cp.ctrlCancel != nil {
		cp.ctrlCancel()
		wait("kube-scheduler", cp.schedDone, 15*time.Second)
		wait("kube-controller-manager", cp.kcmDone, 20*time.Second)
	}
	if cp.apiCancel != nil {
		cp.apiCancel()
		wait("kube-apiserver", cp.apiDone, 30*time.Second)
	}
	if cp.etcd != nil {
		done := make(chan struct{})
		go func() {
			cp.etcd.Close()
			close(done)
		}()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			logf("etcd did not stop within 15s")
		}
	}
}
