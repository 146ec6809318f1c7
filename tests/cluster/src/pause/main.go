// pause: the pod sandbox entrypoint of the devenv test cluster's pause image.
// It holds the pod's namespaces open and does nothing else: it waits for
// SIGINT/SIGTERM and exits 0, and reaps any orphaned children (it may be PID 1
// of a pod sharing its process namespace).
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	for s := range sigs {
		switch s {
		case syscall.SIGCHLD:
			for {
				var ws syscall.WaitStatus
				pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
				if pid <= 0 || err != nil {
					break
				}
			}
		default:
			os.Exit(0)
		}
	}
}
