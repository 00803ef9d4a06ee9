//go:build !linux

package reload

import (
	"errors"
	"net"
)

func supported() bool { return false }

func peerUID(net.Conn) (int, error) { return -1, errors.New("peer credentials need Linux") }

func ownerUID(string) int { return -1 }
