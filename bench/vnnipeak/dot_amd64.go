package main

import "golang.org/x/sys/cpu"

//go:noescape
func dots(n int) uint32

// macsPerIter is the byte multiply-adds of one iteration of dots.
const macsPerIter = 16 * 64

func supported() bool { return cpu.X86.HasAVX512F && cpu.X86.HasAVX512VNNI }
