//go:build !amd64

package main

func dots(n int) uint32 { return 0 }

const macsPerIter = 16 * 64

func supported() bool { return false }
