package store

import "context"

// TamperAuditForTest tries to rewrite the audit log, which must fail.
func TamperAuditForTest(db *DB) error {
	_, err := db.db.ExecContext(context.Background(), `UPDATE audit SET actor = 'mallory'`)
	if err != nil {
		return err
	}
	_, err = db.db.ExecContext(context.Background(), `DELETE FROM audit`)
	return err
}
