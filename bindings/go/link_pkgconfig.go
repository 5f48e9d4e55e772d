//go:build !rigllama_no_pkgconfig

package rigllama

// The C library's flags come from pkg-config: `make install` writes rigllama.pc, and
// PKG_CONFIG_PATH finds one outside pkg-config's default paths (an unpacked release archive).
// The tag rigllama_no_pkgconfig builds with link_flags.go instead.

// #cgo pkg-config: rigllama
import "C"
