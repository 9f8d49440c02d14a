package sqlite_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/inroute/inroute/store"
	"github.com/inroute/inroute/store/sqlite"
	"github.com/inroute/inroute/store/sqlstore"
	"github.com/inroute/inroute/store/storetest"
)

// BenchmarkRecord: messages recorded per second by concurrent routers in
// batches of 256, against plain multi-row inserts into the same database
// file in the same run (the baseline).
func BenchmarkRecord(b *testing.B) {
	for _, routers := range []int{1, 4} {
		b.Run(fmt.Sprintf("routers=%d/baseline", routers), func(b *testing.B) {
			st := open(b)
			storetest.BenchBaseline(b, st.DB(), sqlite.Dialect.Rebind, routers, 256)
		})
		b.Run(fmt.Sprintf("routers=%d/record", routers), func(b *testing.B) {
			storetest.BenchRecord(b, open(b), routers, 256)
		})
	}
}

func open(b *testing.B) *sqlstore.Store {
	b.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(b.TempDir(), "bench.db"), store.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	return st
}
