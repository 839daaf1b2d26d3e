// An HTTPS server on Go's standard library (net/http + crypto/tls), built by tests/support/go_build.py:
//
//	go-tls-server CERT KEY
//
// prints "READY <port>", serves HTTP/1.1 and HTTP/2 (ALPN) until its stdin closes. GET .../status/<code>
// answers that code, any other path 200.
package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
)

func main() {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		code := 200
		if i := strings.Index(r.URL.Path, "/status/"); i >= 0 {
			code, _ = strconv.Atoi(r.URL.Path[i+len("/status/"):])
		}
		w.Header().Set("Content-Type", "text/plain")
		w.WriteHeader(code)
		fmt.Fprintf(w, "%s over go tls\n", r.URL.Path)
	})
	srv := &http.Server{Handler: mux}
	go func() {
		io.Copy(io.Discard, os.Stdin)
		srv.Close()
	}()
	fmt.Printf("READY %d\n", ln.Addr().(*net.TCPAddr).Port)
	if err := srv.ServeTLS(ln, os.Args[1], os.Args[2]); err != nil && err != http.ErrServerClosed {
		panic(err)
	}
}
