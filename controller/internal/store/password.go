package store

import (
	"context"
	"errors"
	"fmt"

	"github.com/cunxiang/cunxiang/api"
	"github.com/cunxiang/cunxiang/controller/internal/cx"
)

// ChangePassword lets a user replace their own password, given the current
// one. Like an admin's change it ends every session of the user, this one
// included: they log in again with the new password.
func (db *DB) ChangePassword(ctx context.Context, userID int64, current, next string) error {
	var hash string
	u, err := scanUserAnd(db.db.QueryRowContext(ctx, `SELECT `+userCols+`, password_hash FROM users WHERE id = $1`, userID), &hash)
	if isNoRows(err) {
		return cx.Errorf(cx.ENOTFOUND, "no user with id %d", userID).With(api.ReasonUserNotFound, "id", userID)
	}
	if err != nil {
		return fmt.Errorf("change password: %w", err)
	}
	if !u.DeletedAt.IsZero() || u.Disabled {
		return ErrUnauthorized
	}
	if !checkPasswordHash(current, hash) {
		return cx.Invalid("current_password", "is not your current password").With(api.ReasonCurrentPassword)
	}
	if current == next {
		return cx.Invalid("new_password", "is the same as the current one").With(api.ReasonPasswordSame)
	}
	var bad *cx.Error
	if err := checkPassword(next); errors.As(err, &bad) {
		return cx.Invalid("new_password", bad.Message).With(bad.Reason, "min", MinPasswordLen)
	}
	_, err = db.UpdateUser(ctx, userID, UserChange{Password: &next})
	return err
}
