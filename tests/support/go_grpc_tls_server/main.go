// A gRPC-Go server over TLS (Debian's golang-google-grpc-dev, GOPATH mode), built by
// tests/support/go_build.py:
//
//	go-grpc-tls-server CERT KEY
//
// prints "READY <port>" and serves grpc.health.v1.Health until its stdin closes: Check answers
// SERVING for the service "echo" and NOT_FOUND for any other.
package main

import (
	"fmt"
	"io"
	"net"
	"os"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

func main() {
	creds, err := credentials.NewServerTLSFromFile(os.Args[1], os.Args[2])
	if err != nil {
		panic(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	srv := grpc.NewServer(grpc.Creds(creds))
	hs := health.NewServer()
	hs.SetServingStatus("echo", healthpb.HealthCheckResponse_SERVING)
	healthpb.RegisterHealthServer(srv, hs)
	go func() {
		io.Copy(io.Discard, os.Stdin)
		srv.Stop()
	}()
	fmt.Printf("READY %d\n", ln.Addr().(*net.TCPAddr).Port)
	if err := srv.Serve(ln); err != nil && err != grpc.ErrServerStopped {
		panic(err)
	}
}
