// Command pause is the sandbox's pod sandbox ("pause") container: it holds the pod's namespaces,
// reaps zombies (it is PID 1 of its PID namespace), and exits 0 on SIGTERM or SIGINT. It plays
// registry.k8s.io/pause, built here as a static program (docs/sandbox.md, "Real nodes").
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	signals := make(chan os.Signal, 8)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT, syscall.SIGCHLD)
	for sig := range signals {
		if sig != syscall.SIGCHLD {
			os.Exit(0)
		}
		for {
			var status syscall.WaitStatus
			pid, err := syscall.Wait4(-1, &status, syscall.WNOHANG, nil)
			if pid <= 0 || err != nil {
				break
			}
		}
	}
}
