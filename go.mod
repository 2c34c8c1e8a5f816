module github.com/verdictnet/verdict

go 1.26.8

require github.com/cometbft/cometbft v0.38.26 // indirect
