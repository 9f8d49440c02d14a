// Package postgres is the store for scale: any number of router and API
// processes share one PostgreSQL database (jackc/pgx v5).
package postgres

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"

	"github.com/inroute/inroute/store"
	"github.com/inroute/inroute/store/sqlstore"
	"github.com/jackc/pgx/v5/pgconn"
	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx"
)

//go:embed migrations/*.sql
var migrations embed.FS

// migrationLockKey is the advisory lock every inroute process takes to
// migrate, so they apply each migration once.
const migrationLockKey = 0x1a7e_0001

// Dialect is PostgreSQL's.
var Dialect = sqlstore.Dialect{
	Name:          "postgres",
	Numbered:      true,
	MigrationLock: fmt.Sprintf("SELECT pg_advisory_xact_lock(%d)", migrationLockKey),
	ForUpdate:     " FOR UPDATE",
	SkipLocked:    " FOR UPDATE SKIP LOCKED",
	AllocIDs:      allocIDs,
	Retryable:     retryable,
}

// allocIDs takes n values of the table's identity sequence in one round trip.
func allocIDs(ctx context.Context, tx *sql.Tx, table string, n int) ([]int64, error) {
	rows, err := tx.QueryContext(ctx, `SELECT nextval(pg_get_serial_sequence($1, 'id')) FROM generate_series(1, $2)`, table, n)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	ids := make([]int64, 0, n)
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		ids = append(ids, id)
	}
	return ids, rows.Err()
}

func retryable(err error) bool {
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		return false
	}
	switch pe.Code {
	case "40001", "40P01", "23505": // serialization failure, deadlock, unique violation
		return true
	}
	return false
}

// Open connects to the database at url (postgres://...) and migrates it.
func Open(ctx context.Context, url string, o store.Options) (*sqlstore.Store, error) {
	db, err := sql.Open("pgx", url)
	if err != nil {
		return nil, fmt.Errorf("open postgres: %w", err)
	}
	db.SetMaxOpenConns(32)
	db.SetMaxIdleConns(32)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("connect to postgres: %w", err)
	}
	sub, _ := fs.Sub(migrations, "migrations")
	return sqlstore.Open(ctx, db, Dialect, sub, o)
}
