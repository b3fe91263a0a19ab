//go:build tools

// Wrapper module that builds Kueue's controller manager (sigs.k8s.io/kueue/cmd/kueue)
// from its published Go module, for the integration tests (see build.sh).
// go.mod pins the release and go.sum every dependency; bump them together
// (go get sigs.k8s.io/kueue@vX && go mod tidy); build.sh reads the version here.
package tools

import _ "sigs.k8s.io/kueue/cmd/kueue"
