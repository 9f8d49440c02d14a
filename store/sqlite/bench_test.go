package sqlite_test

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"

	"github.com/inroute/inroute/store"
	"github.com/inroute/inroute/store/sqlite"
	"github.com/inroute/inroute/store/storetest"
)

// BenchmarkRecord: messages recorded per second by concurrent routers,
// against plain multi-row inserts into the same database file in the same
// run (the baseline).
func BenchmarkRecord(b *testing.B) {
	storetest.Bench(b, func(b *testing.B) (store.Store, *sql.DB) {
		st, err := sqlite.Open(context.Background(), filepath.Join(b.TempDir(), "bench.db"), store.Options{})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { st.Close() })
		return st, st.DB()
	}, sqlite.Dialect.Rebind)
}
