package sqlite_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/inroute/inroute/store"
	"github.com/inroute/inroute/store/sqlite"
	"github.com/inroute/inroute/store/storetest"
)

func backend() storetest.Backend {
	return storetest.Backend{
		Fresh: func(t *testing.T) string { return filepath.Join(t.TempDir(), "inroute.db") },
		Open: func(ctx context.Context, dsn string, o store.Options) (store.Store, error) {
			return sqlite.Open(ctx, dsn, o)
		},
	}
}

func TestContract(t *testing.T) { storetest.Run(t, backend()) }
