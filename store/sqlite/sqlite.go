// Package sqlite is the embedded store: one file under the data directory,
// nothing to install (modernc.org/sqlite is SQLite in pure Go).
package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"

	"github.com/inroute/inroute/store"
	"github.com/inroute/inroute/store/sqlstore"
	sqlite "modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Dialect is SQLite's.
var Dialect = sqlstore.Dialect{Name: "sqlite", SingleWriter: true, Retryable: retryable, AllocIDs: allocIDs}

// allocIDs continues after the highest id ever used: every transaction
// holds the write lock from BEGIN, so nobody else takes ids meanwhile, and
// AUTOINCREMENT's sqlite_sequence keeps purged ids from coming back.
// Allocate once per table per transaction.
func allocIDs(ctx context.Context, tx *sql.Tx, table string, n int) ([]int64, error) {
	var last int64
	err := tx.QueryRowContext(ctx, `SELECT MAX(COALESCE((SELECT seq FROM sqlite_sequence WHERE name = ?), 0),
		COALESCE((SELECT MAX(id) FROM `+table+`), 0))`, table).Scan(&last)
	if err != nil {
		return nil, err
	}
	ids := make([]int64, n)
	for i := range ids {
		ids[i] = last + 1 + int64(i)
	}
	return ids, nil
}

func retryable(err error) bool {
	var se *sqlite.Error
	if !errors.As(err, &se) {
		return false
	}
	switch se.Code() & 0xff {
	case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED:
		return true
	}
	return se.Code() == sqlite3.SQLITE_CONSTRAINT_UNIQUE
}

// Open opens (creating) the database file at path and migrates it.
//
// WAL lets readers work beside the one writer; synchronous=FULL makes every
// commit durable before Record returns, which the router relies on before
// it acknowledges a message; every transaction takes the write lock at
// BEGIN, so concurrent writers queue on busy_timeout instead of failing
// half way.
func Open(ctx context.Context, path string, o store.Options) (*sqlstore.Store, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, fmt.Errorf("sqlite store dir: %w", err)
	}
	q := url.Values{}
	for _, p := range []string{"busy_timeout(30000)", "journal_mode(WAL)", "synchronous(FULL)", "foreign_keys(1)"} {
		q.Add("_pragma", p)
	}
	q.Set("_txlock", "immediate")
	db, err := sql.Open("sqlite", "file:"+path+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	db.SetMaxOpenConns(8)
	db.SetMaxIdleConns(8)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	sub, _ := fs.Sub(migrations, "migrations")
	return sqlstore.Open(ctx, db, Dialect, sub, o)
}
