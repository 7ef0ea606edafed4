// Command ferretdb runs FerretDB (SQLite backend) on a loopback port for the end-to-end tests
// that need a MongoDB-wire server in a process of its own — so that it runs at full speed when
// the tests themselves are built with the race detector. It prints the MongoDB URI on stdout,
// then serves until it is killed. Test-only: nothing in the server links FerretDB.
package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/FerretDB/FerretDB/ferretdb"
)

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: ferretdb 127.0.0.1:PORT DATA_DIR")
		os.Exit(2)
	}
	f, err := ferretdb.New(&ferretdb.Config{
		Listener:  ferretdb.ListenerConfig{TCP: os.Args[1]},
		Handler:   "sqlite",
		SQLiteURL: "file:" + os.Args[2] + "/",
		Logger:    slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "ferretdb:", err)
		os.Exit(1)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	fmt.Println(f.MongoDBURI())
	_ = f.Run(ctx)
}
