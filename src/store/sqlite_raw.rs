//! A SQLite connection's raw handle, borrowed from sqlx, with a cache of
//! prepared statements: the batch writer runs a whole batch synchronously on
//! it instead of one hop to sqlx's worker thread per statement.
//!
//! Statements prepared here belong to the connection: sqlx panics if it closes
//! a connection that still has them, so `finalize_all` must run (under the
//! connection's lock) before the pool can close it. The writer does that when
//! it goes idle and before it stops.

use std::collections::HashMap;
use std::ffi::{c_char, c_int, CStr};
use std::ptr::{self, NonNull};

use libsqlite3_sys as ffi;

/// A failed SQLite call: its result code and SQLite's message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} (SQLite code {code})")]
pub struct SqliteCallError {
    pub code: c_int,
    pub message: String,
}

/// A value bound to a statement parameter.
#[derive(Debug, Clone, Copy)]
pub enum Param<'a> {
    Null,
    Int(i64),
    Text(&'a str),
}

impl<'a> From<Option<&'a str>> for Param<'a> {
    fn from(value: Option<&'a str>) -> Self {
        value.map_or(Param::Null, Param::Text)
    }
}

impl From<Option<i64>> for Param<'_> {
    fn from(value: Option<i64>) -> Self {
        value.map_or(Param::Null, Param::Int)
    }
}

/// One row of a result, readable while the statement is positioned on it.
pub struct Row<'s> {
    statement: &'s NonNull<ffi::sqlite3_stmt>,
}

impl Row<'_> {
    pub fn is_null(&self, index: c_int) -> bool {
        unsafe { ffi::sqlite3_column_type(self.statement.as_ptr(), index) == ffi::SQLITE_NULL }
    }

    pub fn int(&self, index: c_int) -> Option<i64> {
        if self.is_null(index) {
            return None;
        }
        Some(unsafe { ffi::sqlite3_column_int64(self.statement.as_ptr(), index) })
    }

    pub fn text(&self, index: c_int) -> Option<String> {
        if self.is_null(index) {
            return None;
        }
        unsafe {
            let data = ffi::sqlite3_column_text(self.statement.as_ptr(), index);
            let len = ffi::sqlite3_column_bytes(self.statement.as_ptr(), index);
            if data.is_null() {
                return Some(String::new());
            }
            let bytes = std::slice::from_raw_parts(data, usize::try_from(len).unwrap_or(0));
            Some(String::from_utf8_lossy(bytes).into_owned())
        }
    }
}

/// Prepared statements of one connection, keyed by their SQL text.
#[derive(Default)]
pub struct StatementCache {
    /// The connection the cached statements were prepared on.
    owner: Option<NonNull<ffi::sqlite3>>,
    statements: HashMap<&'static str, NonNull<ffi::sqlite3_stmt>>,
}

// The cache is only used by the writer thread, with the connection locked.
unsafe impl Send for StatementCache {}

impl StatementCache {
    pub fn is_empty(&self) -> bool {
        self.statements.is_empty()
    }

    fn finalize_all(&mut self) {
        for (_, statement) in self.statements.drain() {
            unsafe { ffi::sqlite3_finalize(statement.as_ptr()) };
        }
        self.owner = None;
    }
}

/// A locked connection: statements run synchronously on the calling thread.
pub struct RawConnection<'c> {
    db: NonNull<ffi::sqlite3>,
    cache: &'c mut StatementCache,
}

impl<'c> RawConnection<'c> {
    /// # Safety
    /// `db` must be a connection locked for the caller's exclusive use (sqlx's
    /// `LockedSqliteHandle`) for as long as the returned value lives.
    pub unsafe fn new(db: NonNull<ffi::sqlite3>, cache: &'c mut StatementCache) -> Self {
        if cache.owner.is_some_and(|owner| owner != db) {
            // Another connection: sqlx closed the old one, which it only does
            // after `finalize_all`, so nothing of the old one is left to free.
            cache.statements.clear();
        }
        cache.owner = Some(db);
        Self { db, cache }
    }

    fn error(&self, code: c_int) -> SqliteCallError {
        let message = unsafe {
            let text = ffi::sqlite3_errmsg(self.db.as_ptr());
            if text.is_null() {
                String::from("unknown SQLite error")
            } else {
                CStr::from_ptr(text).to_string_lossy().into_owned()
            }
        };
        SqliteCallError { code, message }
    }

    /// Whether the connection is outside any transaction.
    pub fn in_autocommit(&self) -> bool {
        unsafe { ffi::sqlite3_get_autocommit(self.db.as_ptr()) != 0 }
    }

    fn statement(
        &mut self,
        sql: &'static str,
    ) -> Result<NonNull<ffi::sqlite3_stmt>, SqliteCallError> {
        if let Some(statement) = self.cache.statements.get(sql) {
            return Ok(*statement);
        }
        let mut raw = ptr::null_mut();
        let len = c_int::try_from(sql.len()).map_err(|_| SqliteCallError {
            code: ffi::SQLITE_TOOBIG,
            message: "statement too long".into(),
        })?;
        let code = unsafe {
            ffi::sqlite3_prepare_v3(
                self.db.as_ptr(),
                sql.as_ptr().cast::<c_char>(),
                len,
                ffi::SQLITE_PREPARE_PERSISTENT as _,
                &mut raw,
                ptr::null_mut(),
            )
        };
        if code != ffi::SQLITE_OK {
            return Err(self.error(code));
        }
        let statement = NonNull::new(raw).ok_or_else(|| SqliteCallError {
            code: ffi::SQLITE_MISUSE,
            message: "empty statement".into(),
        })?;
        self.cache.statements.insert(sql, statement);
        Ok(statement)
    }

    fn bind(
        &self,
        statement: NonNull<ffi::sqlite3_stmt>,
        params: &[Param<'_>],
    ) -> Result<(), SqliteCallError> {
        for (index, param) in params.iter().enumerate() {
            let position = c_int::try_from(index + 1).unwrap_or(c_int::MAX);
            let code = unsafe {
                match *param {
                    Param::Null => ffi::sqlite3_bind_null(statement.as_ptr(), position),
                    Param::Int(value) => {
                        ffi::sqlite3_bind_int64(statement.as_ptr(), position, value)
                    }
                    Param::Text(text) => ffi::sqlite3_bind_text64(
                        statement.as_ptr(),
                        position,
                        text.as_ptr().cast::<c_char>(),
                        text.len() as u64,
                        ffi::SQLITE_TRANSIENT(),
                        ffi::SQLITE_UTF8 as u8,
                    ),
                }
            };
            if code != ffi::SQLITE_OK {
                return Err(self.error(code));
            }
        }
        Ok(())
    }

    /// Runs a statement, calling `on_row` for each row; returns how many rows
    /// it produced.
    pub fn run(
        &mut self,
        sql: &'static str,
        params: &[Param<'_>],
        mut on_row: impl FnMut(&Row<'_>),
    ) -> Result<usize, SqliteCallError> {
        let statement = self.statement(sql)?;
        // A statement left mid-step (by a panic in `on_row`) must be reset first.
        unsafe { ffi::sqlite3_reset(statement.as_ptr()) };
        let result = self.bind(statement, params).and_then(|()| {
            let mut rows = 0;
            loop {
                match unsafe { ffi::sqlite3_step(statement.as_ptr()) } {
                    ffi::SQLITE_ROW => {
                        rows += 1;
                        on_row(&Row {
                            statement: &statement,
                        });
                    }
                    ffi::SQLITE_DONE => return Ok(rows),
                    code => return Err(self.error(code)),
                }
            }
        });
        // Leave the statement reusable and holding no read transaction.
        unsafe {
            ffi::sqlite3_reset(statement.as_ptr());
            ffi::sqlite3_clear_bindings(statement.as_ptr());
        }
        result
    }

    /// Runs a statement that returns no rows.
    pub fn execute(
        &mut self,
        sql: &'static str,
        params: &[Param<'_>],
    ) -> Result<(), SqliteCallError> {
        self.run(sql, params, |_| {}).map(|_| ())
    }

    /// Finalizes the cached statements (before the connection may close).
    pub fn finalize_statements(&mut self) {
        self.cache.finalize_all();
    }
}
