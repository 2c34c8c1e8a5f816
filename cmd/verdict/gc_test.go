package main

import (
	"runtime/debug"
	"testing"
)

func TestModelGC(t *testing.T) {
	for _, c := range []struct {
		env, val string
		want     int
	}{{"GOGC", "", ModelGCPercent}, {"GOGC", "200", 100}, {"GOMEMLIMIT", "1GiB", 100}} {
		t.Run(c.env+"="+c.val, func(t *testing.T) {
			t.Setenv("GOGC", "")
			t.Setenv("GOMEMLIMIT", "")
			t.Setenv(c.env, c.val)
			old := debug.SetGCPercent(100)
			defer debug.SetGCPercent(old)
			modelGC()
			if got := debug.SetGCPercent(100); got != c.want {
				t.Errorf("GOGC %d, want %d", got, c.want)
			}
		})
	}
}
