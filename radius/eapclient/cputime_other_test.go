//go:build !unix

package eapclient

import "time"

func processCPU() time.Duration { return 0 }
