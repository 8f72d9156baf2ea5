package meta

import "errors"

// ErrDamaged wraps the error of a meta.db whose content is at fault (see
// Open): not a bbolt file, bad meta page checksums, a structure bbolt's
// consistency check rejects.
var ErrDamaged = errors.New("meta: damaged file")
