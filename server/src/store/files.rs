//! Files: uploads in progress and stored files, and the check that a
//! message may carry them. The bytes live in the file store
//! ([`crate::files`]); these rows say whose they are, how far an upload
//! got, what the bytes turned out to be, and which room may read them.

use super::rows::parse_id;
use super::{Store, StoreError};
use natter_shared::{Attachment, ClientId, FileId, RoomId, SiteId, UserId};
use sqlx::Row;
use sqlx::any::AnyRow;

/// A file's row.
#[derive(Debug, Clone)]
pub struct FileRow {
    pub id: FileId,
    pub site: SiteId,
    pub user: UserId,
    pub name: String,
    /// The size announced when the upload was created.
    pub length: u64,
    /// Bytes stored so far.
    pub received: u64,
    /// Sniffed from the bytes once complete.
    pub mime: Option<String>,
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub thumb: bool,
    /// The room of the message that holds it, once that message is stored.
    pub room: Option<RoomId>,
    /// That message's client id.
    pub message: Option<ClientId>,
    pub created_at: i64,
    pub completed_at: Option<i64>,
}

impl FileRow {
    /// What a message says about this file.
    pub fn attachment(&self) -> Attachment {
        Attachment {
            id: self.id.clone(),
            name: self.name.clone(),
            size: self.length,
            mime: self.mime.clone().unwrap_or_default(),
            width: self.width,
            height: self.height,
            thumb: self.thumb,
        }
    }
}

/// What a file becomes once all its bytes are in.
#[derive(Debug, Clone)]
pub struct Completed {
    pub mime: String,
    /// The size of the stored file (metadata stripped from images).
    pub size: u64,
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub thumb: bool,
}

/// Why files cannot go into a message.
#[derive(Debug, thiserror::Error)]
pub enum AttachError {
    #[error("at most {0} files per message")]
    TooMany(usize),
    #[error("file {0} does not exist, is not yours, or has not finished uploading")]
    Unusable(FileId),
    #[error("file {0} was posted in another room; upload it again to post it here")]
    OtherRoom(FileId),
    #[error("file {0} is in another message; upload it again to post it again")]
    InMessage(FileId),
    #[error("file {0} is listed twice")]
    Repeated(FileId),
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn file_from_row(row: &AnyRow) -> Result<FileRow, StoreError> {
    let num = |v: i64| u64::try_from(v).map_err(|_| StoreError::Corrupt(format!("size {v}")));
    let dim = |v: Option<i64>| v.and_then(|v| u32::try_from(v).ok());
    Ok(FileRow {
        id: parse_id(FileId::parse, row.try_get("id")?)?,
        site: parse_id(SiteId::parse, row.try_get("site_id")?)?,
        user: parse_id(UserId::parse, row.try_get("user_id")?)?,
        name: row.try_get("name")?,
        length: num(row.try_get("length")?)?,
        received: num(row.try_get("received")?)?,
        mime: row.try_get("mime")?,
        width: dim(row.try_get("width")?),
        height: dim(row.try_get("height")?),
        thumb: row.try_get::<i64, _>("thumb")? != 0,
        room: row
            .try_get::<Option<String>, _>("room_id")?
            .map(|r| parse_id(RoomId::parse, r))
            .transpose()?,
        message: row
            .try_get::<Option<String>, _>("client_id")?
            .map(|c| parse_id(ClientId::try_from, c))
            .transpose()?,
        created_at: row.try_get("created_at")?,
        completed_at: row.try_get("completed_at")?,
    })
}

fn db_len(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl Store {
    /// Records a new upload of `length` bytes by `user`.
    pub async fn create_upload(
        &self,
        id: &FileId,
        site: &SiteId,
        user: &UserId,
        name: &str,
        length: u64,
        now: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO files (id, site_id, user_id, name, length, received, thumb, created_at, updated_at) \
             VALUES (?, ?, ?, ?, ?, 0, 0, ?, ?)",
        )
        .bind(id.as_str())
        .bind(site.as_str())
        .bind(user.as_str())
        .bind(name)
        .bind(db_len(length))
        .bind(now)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Bytes `user` announced in uploads created since `since` (ms).
    pub async fn upload_bytes_since(
        &self,
        site: &SiteId,
        user: &UserId,
        since: i64,
    ) -> Result<u64, StoreError> {
        // MySQL's SUM is a DECIMAL: cast it back to an integer there.
        let sql = match self.backend {
            super::Backend::Sqlite => {
                "SELECT COALESCE(SUM(length), 0) AS total FROM files \
                 WHERE site_id = ? AND user_id = ? AND created_at >= ?"
            }
            super::Backend::MySql => {
                "SELECT CAST(COALESCE(SUM(length), 0) AS SIGNED) AS total FROM files \
                 WHERE site_id = ? AND user_id = ? AND created_at >= ?"
            }
        };
        let row = sqlx::query(sql)
            .bind(site.as_str())
            .bind(user.as_str())
            .bind(since)
            .fetch_one(&self.pool)
            .await?;
        Ok(u64::try_from(row.try_get::<i64, _>("total")?).unwrap_or(0))
    }

    /// A file by id.
    pub async fn file(&self, id: &FileId) -> Result<Option<FileRow>, StoreError> {
        let row = sqlx::query(
            "SELECT id, site_id, user_id, name, length, received, mime, width, height, thumb, \
             room_id, client_id, created_at, completed_at FROM files WHERE id = ?",
        )
        .bind(id.as_str())
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(file_from_row).transpose()
    }

    /// Moves an upload's offset from `from` to `to`, only if no other
    /// request moved it meanwhile. True when it moved.
    pub async fn advance_upload(
        &self,
        id: &FileId,
        from: u64,
        to: u64,
        now: i64,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE files SET received = ?, updated_at = ? \
             WHERE id = ? AND received = ? AND completed_at IS NULL",
        )
        .bind(db_len(to))
        .bind(now)
        .bind(id.as_str())
        .bind(db_len(from))
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Marks an upload complete with what its bytes turned out to be.
    pub async fn complete_file(
        &self,
        id: &FileId,
        done: &Completed,
        now: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE files SET mime = ?, length = ?, received = ?, width = ?, height = ?, \
             thumb = ?, completed_at = ?, updated_at = ? WHERE id = ?",
        )
        .bind(done.mime.as_str())
        .bind(db_len(done.size))
        .bind(db_len(done.size))
        .bind(done.width.map(i64::from))
        .bind(done.height.map(i64::from))
        .bind(i64::from(done.thumb))
        .bind(now)
        .bind(now)
        .bind(id.as_str())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Forgets a file's row.
    pub async fn delete_file(&self, id: &FileId) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM files WHERE id = ?")
            .bind(id.as_str())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Uploads not completed and untouched since `before` (ms).
    pub async fn stale_uploads(&self, before: i64) -> Result<Vec<FileId>, StoreError> {
        let rows = sqlx::query(
            "SELECT id FROM files WHERE completed_at IS NULL AND updated_at < ? LIMIT 1000",
        )
        .bind(before)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| parse_id(FileId::parse, r.try_get::<String, _>("id")?))
            .collect()
    }

    /// Checks that `user` may post `ids` in `room` in the message
    /// `client_id`: at most `max` of them, each once, `user` a member of
    /// the room, each file their own, complete, of this site and in no
    /// other message (a retried send's own files are its own; see below
    /// for files bound before messages were recorded). Returns
    /// what the message says of each, in order. It binds nothing: the
    /// writer binds the files to the message in the transaction that
    /// stores it, and checks again there (see [`StoreError::FileTaken`]).
    pub async fn attach_files(
        &self,
        site: &SiteId,
        user: &UserId,
        room: &RoomId,
        client_id: Option<&ClientId>,
        ids: &[FileId],
        max: usize,
    ) -> Result<Vec<Attachment>, AttachError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        if ids.len() > max {
            return Err(AttachError::TooMany(max));
        }
        if let Some(twice) = ids
            .iter()
            .enumerate()
            .find_map(|(i, id)| ids[..i].contains(id).then_some(id))
        {
            return Err(AttachError::Repeated(twice.clone()));
        }
        if !self.is_member(site, room, user).await? {
            return Err(StoreError::NotMember.into());
        }
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            let file = self.file(id).await?;
            let Some(file) =
                file.filter(|f| &f.site == site && &f.user == user && f.completed_at.is_some())
            else {
                return Err(AttachError::Unusable(id.clone()));
            };
            // A file bound without its message's client id (before
            // migration 0011, or by an older node) is taken in its room
            // as it was then.
            match (&file.room, &file.message) {
                (Some(r), _) if r != room => return Err(AttachError::OtherRoom(id.clone())),
                (Some(_), Some(holder)) if Some(holder) != client_id => {
                    return Err(AttachError::InMessage(id.clone()));
                }
                _ => {}
            }
            out.push(file.attachment());
        }
        Ok(out)
    }

    /// Forgets a file's row if no message holds it. False when one does
    /// (or the row is gone).
    pub async fn delete_free_file(&self, id: &FileId) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM files WHERE id = ? AND room_id IS NULL")
            .bind(id.as_str())
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Sets (or with `None` clears) a site's allow-list of file types.
    pub async fn set_site_file_types(
        &self,
        site: &SiteId,
        types: Option<&str>,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE sites SET file_types = ? WHERE id = ?")
            .bind(types)
            .bind(site.as_str())
            .execute(&self.pool)
            .await?;
        self.sites.forget(site);
        Ok(())
    }
}
