//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package outbound

import "syscall"

// peekFD peeks one byte without blocking: true when data or an EOF is
// waiting on the socket.
func peekFD(fd uintptr) bool {
	var b [1]byte
	n, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
	return err == nil && n >= 0
}
