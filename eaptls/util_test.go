package eaptls

import "runtime"

func runtimeNumGoroutine() int { return runtime.NumGoroutine() }
