package main

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"

	"github.com/spf13/pflag"
	utilerrors "k8s.io/apimachinery/pkg/util/errors"
	"k8s.io/client-go/tools/cache"
	"k8s.io/kubernetes/cmd/kube-apiserver/app"
	"k8s.io/kubernetes/cmd/kube-apiserver/app/options"
)

const (
	defaultServiceCIDR   = "10.96.0.0/16"
	serviceAccountIssuer = "https://kubernetes.default.svc.cluster.local"
)

// apiAddresses are the API server's listen and advertised addresses and its Service range.
type apiAddresses struct {
	bind, advertise, serviceCIDR string
}

// firstServiceIP is the address the kubernetes Service gets in cidr (its first host address).
func firstServiceIP(cidr string) (string, error) {
	prefix, err := netip.ParsePrefix(cidr)
	if err != nil || !prefix.Addr().Is4() {
		return "", fmt.Errorf("--service-cluster-ip-range %q is not an IPv4 CIDR", cidr)
	}
	return prefix.Masked().Addr().Next().String(), nil
}

// startAPIServer builds kube-apiserver's options from a command line, exactly
// as the real binary would parse it, and runs the server chain (aggregator ->
// kube APIs -> apiextensions) in a goroutine. The returned channel receives
// the result of the server's Run once it stops.
func startAPIServer(ctx context.Context, ln net.Listener, etcdURL string, pki pkiFiles, addrs apiAddresses) (<-chan error, error) {
	port := ln.Addr().(*net.TCPAddr).Port
	s := options.NewServerRunOptions()
	fs := pflag.NewFlagSet("kube-apiserver", pflag.ContinueOnError)
	for _, f := range s.Flags().FlagSets {
		fs.AddFlagSet(f)
	}
	policyPath, auditLog, err := writeAuditPolicy(filepath.Dir(pki.Dir))
	if err != nil {
		return nil, err
	}
	args := []string{
		"--etcd-servers=" + etcdURL,
		// Requests of the ferry-system ServiceAccounts (Ferry's controller and its remote role) are
		// logged at Metadata level, so a test can compare what Ferry did with what its RBAC grants.
		"--audit-policy-file=" + policyPath,
		"--audit-log-path=" + auditLog,
		"--audit-log-format=json",
		"--audit-log-mode=blocking",
		"--advertise-address=" + addrs.advertise,
		"--bind-address=" + addrs.bind,
		"--secure-port=" + strconv.Itoa(port),
		"--tls-cert-file=" + pki.ServingCert,
		"--tls-private-key-file=" + pki.ServingKey,
		"--client-ca-file=" + pki.CACert,
		"--service-account-issuer=" + serviceAccountIssuer,
		"--service-account-key-file=" + pki.SAPublicKey,
		"--service-account-signing-key-file=" + pki.SAPrivateKey,
		"--authorization-mode=Node,RBAC",
		"--service-cluster-ip-range=" + addrs.serviceCIDR,
		"--allow-privileged=true",
		// Without a node lifecycle controller nothing would ever lift the
		// not-ready taint this plugin puts on new nodes.
		"--disable-admission-plugins=TaintNodesByCondition",
		// The advertised address is loopback by default, which Endpoints may not carry.
		"--endpoint-reconciler-type=none",
		"--profiling=false",
		"--event-ttl=1h",
		// Dial a node's InternalIP for the kubelet API (the e2e node agent's on 127.0.0.1, or a
		// real kubelet's on its network namespace's address), never its unresolvable hostname.
		"--kubelet-preferred-address-types=InternalIP",
	}
	if err := fs.Parse(args); err != nil {
		return nil, fmt.Errorf("kube-apiserver flags: %w", err)
	}
	s.SecureServing.Listener = ln
	s.SecureServing.BindPort = port

	if err := s.GenericServerRunOptions.ComponentGlobalsRegistry.Set(); err != nil {
		return nil, fmt.Errorf("kube-apiserver feature gates: %w", err)
	}
	completed, err := s.Complete(ctx)
	if err != nil {
		return nil, fmt.Errorf("kube-apiserver options: %w", err)
	}
	if errs := completed.Validate(); len(errs) != 0 {
		return nil, fmt.Errorf("kube-apiserver options: %w", utilerrors.NewAggregate(errs))
	}
	if completed.InformerName == nil {
		name, err := cache.NewInformerName("kube-apiserver")
		if err != nil {
			return nil, err
		}
		completed.InformerName = name
	}
	config, err := app.NewConfig(completed)
	if err != nil {
		return nil, fmt.Errorf("kube-apiserver config: %w", err)
	}
	completedConfig, err := config.Complete()
	if err != nil {
		return nil, fmt.Errorf("kube-apiserver config: %w", err)
	}
	server, err := app.CreateServerChain(completedConfig)
	if err != nil {
		return nil, fmt.Errorf("kube-apiserver server chain: %w", err)
	}
	prepared, err := server.PrepareRun()
	if err != nil {
		return nil, fmt.Errorf("kube-apiserver prepare: %w", err)
	}
	done := make(chan error, 1)
	go func() {
		done <- prepared.Run(ctx)
	}()
	return done, nil
}

// auditPolicy logs, once per request (at ResponseComplete, or ResponseStarted for watches), the
// verb, resource and response code of every request made by a ServiceAccount of the ferry-system
// namespace, and nothing else.
const auditPolicy = `apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
  - level: Metadata
    userGroups: ["system:serviceaccounts:ferry-system"]
  - level: None
`

// writeAuditPolicy writes the policy into dir and returns its path and the audit log's
// (dir/audit.log).
func writeAuditPolicy(dir string) (string, string, error) {
	policy := filepath.Join(dir, "audit-policy.yaml")
	if err := os.WriteFile(policy, []byte(auditPolicy), 0o600); err != nil {
		return "", "", fmt.Errorf("writing the audit policy: %w", err)
	}
	return policy, filepath.Join(dir, "audit.log"), nil
}
