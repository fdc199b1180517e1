//go:build !unix

package eaptls

import "time"

func processCPU() time.Duration { return 0 }
