// Package testutil holds helpers shared by the tests of several packages:
// locating the repository root and the ../shared material beside it.
package testutil
