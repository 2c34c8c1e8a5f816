// Package hugepage allocates memory that the operating system is asked to
// back with 2 MiB pages instead of 4 KiB ones (transparent huge pages on
// Linux), for the key/value cache: a decode step of many sequences reads
// each one's cache in short runs scattered over hundreds of megabytes, and
// with 4 KiB pages nearly every run starts with a TLB miss and a page walk.
// The advice is a hint: where the system declines it (huge pages disabled,
// no free 2 MiB page, another operating system) the memory is ordinary
// memory, and nothing computed from it changes.
package hugepage
