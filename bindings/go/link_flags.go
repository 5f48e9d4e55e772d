//go:build rigllama_no_pkgconfig

package rigllama

// Built with -tags rigllama_no_pkgconfig: no pkg-config; the header and library are found on
// the compiler's default paths or through CGO_CFLAGS="-I<prefix>/include" and
// CGO_LDFLAGS="-L<prefix>/lib".

// #cgo LDFLAGS: -lrigllama
import "C"
