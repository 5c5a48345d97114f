package main

import (
	"fmt"
	"net"
	"net/url"
	"path/filepath"
	"strconv"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// embeddedEtcd is a single-member etcd running inside this process, listening
// on loopback only, with ports picked at start-up.
type embeddedEtcd struct {
	etcd      *embed.Etcd
	clientURL string
	logLevel  zap.AtomicLevel
	verbosity int
}

// freePort asks the kernel for an unused loopback TCP port. The port is free
// when this returns; a start-up that loses the race retries with new ports.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func etcdLogger(verbosity int) (*zap.Logger, zap.AtomicLevel) {
	level := zapcore.ErrorLevel
	switch {
	case verbosity >= 4:
		level = zapcore.InfoLevel
	case verbosity >= 2:
		level = zapcore.WarnLevel
	}
	atomicLevel := zap.NewAtomicLevelAt(level)
	cfg := zap.Config{
		Level:             atomicLevel,
		DisableStacktrace: verbosity < 2,
		Encoding:          "console",
		EncoderConfig:     zap.NewDevelopmentEncoderConfig(),
		OutputPaths:       []string{"stderr"},
		ErrorOutputPaths:  []string{"stderr"},
	}
	lg, err := cfg.Build(zap.AddCaller())
	if err != nil {
		return zap.NewNop(), atomicLevel
	}
	return lg.Named("etcd"), atomicLevel
}

func startEtcd(dataDir string, verbosity int) (*embeddedEtcd, error) {
	var lastErr error
	for attempt := 0; attempt < 4; attempt++ {
		e, err := startEtcdOnce(dataDir, verbosity)
		if err == nil {
			return e, nil
		}
		lastErr = err
		time.Sleep(200 * time.Millisecond)
	}
	return nil, lastErr
}

func startEtcdOnce(dataDir string, verbosity int) (*embeddedEtcd, error) {
	clientPort, err := freePort()
	if err != nil {
		return nil, err
	}
	peerPort, err := freePort()
	if err != nil {
		return nil, err
	}
	clientURL := url.URL{Scheme: "http", Host: net.JoinHostPort("127.0.0.1", strconv.Itoa(clientPort))}
	peerURL := url.URL{Scheme: "http", Host: net.JoinHostPort("127.0.0.1", strconv.Itoa(peerPort))}

	cfg := embed.NewConfig()
	cfg.Name = "controlplane"
	cfg.Dir = filepath.Join(dataDir, "etcd")
	cfg.ListenClientUrls = []url.URL{clientURL}
	cfg.AdvertiseClientUrls = []url.URL{clientURL}
	cfg.ListenPeerUrls = []url.URL{peerURL}
	cfg.AdvertisePeerUrls = []url.URL{peerURL}
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
	cfg.ClusterState = embed.ClusterStateFlagNew
	// Test clusters are throw-away: trade durability for speed.
	cfg.UnsafeNoFsync = true
	cfg.Logger = "zap"
	logger, logLevel := etcdLogger(verbosity)
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(logger)

	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return nil, fmt.Errorf("start etcd: %w", err)
	}
	select {
	case <-e.Server.ReadyNotify():
	case err := <-e.Err():
		e.Close()
		return nil, fmt.Errorf("etcd failed: %w", err)
	case <-time.After(60 * time.Second):
		e.Server.Stop()
		e.Close()
		return nil, fmt.Errorf("etcd did not become ready within 60s")
	}
	return &embeddedEtcd{etcd: e, clientURL: clientURL.String(), logLevel: logLevel, verbosity: verbosity}, nil
}

func (e *embeddedEtcd) Close() {
	if e.verbosity < 2 {
		// Closing makes etcd log "server closed" errors for every listener.
		e.logLevel.SetLevel(zapcore.FatalLevel)
	}
	e.etcd.Close()
}
