package model

// MinHugeCopy lets tests copy models smaller than CopyToHugePages's floor.
var MinHugeCopy = &minHugeCopy
