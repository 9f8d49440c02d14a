package postgres_test

import (
	"context"
	"testing"

	"github.com/inroute/inroute/store"
	"github.com/inroute/inroute/store/postgres"
	"github.com/inroute/inroute/store/postgres/pgtest"
	"github.com/inroute/inroute/store/storetest"
)

func TestContract(t *testing.T) {
	pgtest.URL(t)
	storetest.Run(t, storetest.Backend{
		Fresh: func(t *testing.T) string { return pgtest.FreshURL(t) },
		Open: func(ctx context.Context, dsn string, o store.Options) (store.Store, error) {
			return postgres.Open(ctx, dsn, o)
		},
	})
}
