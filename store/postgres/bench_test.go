package postgres_test

import (
	"context"
	"database/sql"
	"testing"

	"github.com/inroute/inroute/store"
	"github.com/inroute/inroute/store/postgres"
	"github.com/inroute/inroute/store/postgres/pgtest"
	"github.com/inroute/inroute/store/storetest"
)

// BenchmarkRecord: messages recorded per second by concurrent routers,
// against plain multi-row inserts into the same database in the same run
// (the baseline). Needs INROUTE_TEST_POSTGRES_URL.
func BenchmarkRecord(b *testing.B) {
	storetest.Bench(b, func(b *testing.B) (store.Store, *sql.DB) {
		st, err := postgres.Open(context.Background(), pgtest.FreshURL(b), store.Options{})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { st.Close() })
		return st, st.DB()
	}, postgres.Dialect.Rebind)
}
