//! Companies and their users, and seeding an empty database.

use sqlx::Row as _;
use tessera_core::{CompanySlug, Role, Username};
use uuid::Uuid;

use super::revocations::{self, Owner};
use super::{D, Exec, Pool, Row, Time, clients, find, find_all};
use crate::convert::{parse_name, parse_words, stored_time};
use crate::dialect::{Dialect, Lock, storable};
use crate::model::{Company, NewCompany, NewUser, Seed, User, UserCredentials, UserPatch};
use crate::{Result, StoreError};

/// What every user query returns, the company's slug joined in.
macro_rules! select_user {
    () => {
        "SELECT u.id, c.slug AS company, u.username, u.password_hash, u.roles, u.disabled, \
         u.created_at, u.updated_at, u.tokens_revoked_at, u.name, u.email \
         FROM users u JOIN companies c ON c.id = u.company_id"
    };
}

/// The columns of `select_user!()`, returned by a change to `users`: one statement, with
/// no second read that a concurrent change could slip before.
macro_rules! returning_user {
    () => {
        " RETURNING id, (SELECT slug FROM companies WHERE companies.id = users.company_id) \
         AS company, username, password_hash, roles, disabled, created_at, updated_at, \
         tokens_revoked_at, name, email"
    };
}

const LIST_COMPANIES: &str = concat!(
    "SELECT id, slug, name, created_at FROM companies ORDER BY slug",
    by_bytes!()
);
const USER_BY_NAME: &str = concat!(select_user!(), " WHERE u.username = $1");
const USER_BY_ID: &str = concat!(select_user!(), " WHERE u.id = $1");
const USER_IN: &str = concat!(select_user!(), " WHERE c.slug = $1 AND u.id = $2");
const USERS: &str = concat!(select_user!(), " ORDER BY u.username", by_bytes!());
const USERS_IN: &str = concat!(
    select_user!(),
    " WHERE c.slug = $1 ORDER BY u.username",
    by_bytes!()
);
const SET_DISABLED: &str = concat!(
    "UPDATE users SET disabled = $1, updated_at = $2 WHERE username = $3",
    returning_user!()
);
const UPDATE: &str = concat!(
    "UPDATE users SET roles = COALESCE($1, roles), disabled = COALESCE($2, disabled), \
     password_hash = COALESCE($3, password_hash), updated_at = $4, \
     name = CASE WHEN $7 THEN $8 ELSE name END, email = CASE WHEN $9 THEN $10 ELSE email END \
     WHERE id = $5 AND company_id = (SELECT id FROM companies WHERE slug = $6)",
    returning_user!()
);

fn company_from_row(row: &Row) -> Result<Company> {
    Ok(Company {
        id: D::get_id(row, "id")?,
        slug: parse_name(row.try_get("slug")?, "company slug")?,
        name: row.try_get("name")?,
        created_at: row.try_get("created_at")?,
    })
}

/// Where a row holds a user's fields.
pub(crate) struct UserColumns {
    pub(crate) id: &'static str,
    company: &'static str,
    username: &'static str,
    roles: &'static str,
    disabled: &'static str,
    created_at: &'static str,
    updated_at: &'static str,
    tokens_revoked_at: &'static str,
    name: &'static str,
    email: &'static str,
}

/// The columns of `select_user!()`.
const USER_COLUMNS: UserColumns = UserColumns {
    id: "id",
    company: "company",
    username: "username",
    roles: "roles",
    disabled: "disabled",
    created_at: "created_at",
    updated_at: "updated_at",
    tokens_revoked_at: "tokens_revoked_at",
    name: "name",
    email: "email",
};

/// The columns of a user joined to a row of another table (`joined_user!()`).
pub(crate) const JOINED_USER_COLUMNS: UserColumns = UserColumns {
    id: "u_id",
    company: "u_company",
    username: "u_username",
    roles: "u_roles",
    disabled: "u_disabled",
    created_at: "u_created_at",
    updated_at: "u_updated_at",
    tokens_revoked_at: "u_tokens_revoked_at",
    name: "u_name",
    email: "u_email",
};

/// The user's columns, named as [`JOINED_USER_COLUMNS`] says, of `u` (users) and `c` (its
/// company) joined to a query on another table.
macro_rules! joined_user {
    () => {
        "u.id AS u_id, c.slug AS u_company, u.username AS u_username, u.roles AS u_roles, \
         u.disabled AS u_disabled, u.created_at AS u_created_at, u.updated_at AS u_updated_at, \
         u.tokens_revoked_at AS u_tokens_revoked_at, u.name AS u_name, u.email AS u_email"
    };
}

fn user_from_row(row: &Row) -> Result<User> {
    user_from_columns(row, &USER_COLUMNS)
}

/// The user in `row`'s `columns`.
pub(crate) fn user_from_columns(row: &Row, columns: &UserColumns) -> Result<User> {
    Ok(User {
        id: D::get_id(row, columns.id)?,
        company: parse_name(row.try_get(columns.company)?, "company")?,
        username: parse_name(row.try_get(columns.username)?, "username")?,
        roles: parse_words(D::get_words(row, columns.roles)?, "roles")?,
        disabled: row.try_get(columns.disabled)?,
        created_at: row.try_get(columns.created_at)?,
        updated_at: row.try_get(columns.updated_at)?,
        tokens_revoked_at: row.try_get(columns.tokens_revoked_at)?,
        name: row.try_get(columns.name)?,
        email: row.try_get(columns.email)?,
    })
}

fn not_found(username: &Username) -> StoreError {
    StoreError::NotFound(format!("user {username} does not exist"))
}

pub async fn seed_if_empty(pool: &Pool, seed: &Seed, now: Time) -> Result<bool> {
    // The lock comes before the count: two processes seeding at once take turns
    // instead of both reading "empty".
    let mut tx = D::begin(pool, Lock::Seed).await?;
    let existing: i64 = sqlx::query_scalar(
        "SELECT (SELECT COUNT(*) FROM companies) + (SELECT COUNT(*) FROM users) \
         + (SELECT COUNT(*) FROM clients)",
    )
    .fetch_one(&mut *tx)
    .await?;
    if existing > 0 {
        return Ok(false);
    }
    for company in &seed.companies {
        create_company(&mut *tx, company, now).await?;
    }
    for user in &seed.users {
        create_user(&mut *tx, user, now).await?;
    }
    for client in &seed.clients {
        clients::create_client(&mut *tx, client, now).await?;
    }
    tx.commit().await?;
    Ok(true)
}

pub async fn create_company(ex: impl Exec<'_>, new: &NewCompany, now: Time) -> Result<Company> {
    let now = stored_time(now);
    let id = Uuid::new_v4();
    sqlx::query("INSERT INTO companies (id, slug, name, created_at) VALUES ($1, $2, $3, $4)")
        .bind(D::id(id))
        .bind(new.slug.as_str())
        .bind(&new.name)
        .bind(now)
        .execute(ex)
        .await
        .map_err(|e| StoreError::from_sqlx(e, || format!("company {} already exists", new.slug)))?;
    Ok(new.stored(id, now))
}

pub async fn create_user(ex: impl Exec<'_>, new: &NewUser, now: Time) -> Result<User> {
    let now = stored_time(now);
    let id = Uuid::new_v4();
    let done = sqlx::query(
        "INSERT INTO users (id, company_id, username, password_hash, roles, disabled, created_at, \
         updated_at, name, email) \
         SELECT $1, c.id, $2, $3, $4, false, $5, $5, $7, $8 FROM companies c WHERE c.slug = $6",
    )
    .bind(D::id(id))
    .bind(new.username.as_str())
    .bind(&new.password_hash)
    .bind(D::words(&new.roles))
    .bind(now)
    .bind(new.company.as_str())
    .bind(&new.name)
    .bind(&new.email)
    .execute(ex)
    .await
    .map_err(|e| {
        StoreError::from_sqlx(e, || format!("username {} is already taken", new.username))
    })?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound(format!(
            "company {} does not exist",
            new.company
        )));
    }
    Ok(new.stored(id, now))
}

pub async fn list_companies(pool: &Pool) -> Result<Vec<Company>> {
    find_all(pool, sqlx::query(LIST_COMPANIES), company_from_row).await
}

pub async fn find_user_credentials(pool: &Pool, username: &str) -> Result<Option<UserCredentials>> {
    if !storable(username) {
        return Ok(None);
    }
    let row = sqlx::query(USER_BY_NAME)
        .bind(username)
        .fetch_optional(pool)
        .await?;
    row.map(|row| {
        Ok(UserCredentials {
            user: user_from_row(&row)?,
            password_hash: row.try_get("password_hash")?,
        })
    })
    .transpose()
}

pub async fn list_users(pool: &Pool, company: Option<&CompanySlug>) -> Result<Vec<User>> {
    let query = match company {
        Some(slug) => sqlx::query(USERS_IN).bind(slug.as_str()),
        None => sqlx::query(USERS),
    };
    find_all(pool, query, user_from_row).await
}

pub async fn set_user_disabled(
    pool: &Pool,
    username: &Username,
    disabled: bool,
    now: Time,
) -> Result<User> {
    let mut tx = D::begin(pool, Lock::Rows).await?;
    let row = sqlx::query(SET_DISABLED)
        .bind(disabled)
        .bind(stored_time(now))
        .bind(username.as_str())
        .fetch_optional(&mut *tx)
        .await?;
    let mut user = user_from_row(&row.ok_or_else(|| not_found(username))?)?;
    if disabled {
        // What was issued before goes with the account's use.
        revocations::revoke_everything(&mut tx, Owner::User(user.id), now).await?;
        user = user_by_id(&mut *tx, user.id)
            .await?
            .ok_or_else(|| not_found(username))?;
    }
    tx.commit().await?;
    Ok(user)
}

/// Deletes the user `DELETE_*` finds and records that their JWTs are revoked, in `tx`.
/// Their refresh and opaque tokens, codes and sessions go with the row (ON DELETE
/// CASCADE). Whether there was one.
async fn delete_and_revoke(
    tx: &mut <<D as Dialect>::Db as sqlx::Database>::Connection,
    query: super::Query<'_>,
    now: Time,
) -> Result<bool> {
    let Some(row) = query.fetch_optional(&mut *tx).await? else {
        return Ok(false);
    };
    let id = D::get_id(&row, "id")?;
    revocations::cut_off(tx, Owner::User(id), now).await?;
    Ok(true)
}

pub async fn delete_user(pool: &Pool, username: &Username, now: Time) -> Result<()> {
    let mut tx = D::begin(pool, Lock::Rows).await?;
    let query =
        sqlx::query("DELETE FROM users WHERE username = $1 RETURNING id").bind(username.as_str());
    if !delete_and_revoke(&mut tx, query, now).await? {
        return Err(not_found(username));
    }
    tx.commit().await?;
    Ok(())
}

pub async fn find_user(pool: &Pool, company: &CompanySlug, id: Uuid) -> Result<Option<User>> {
    let query = sqlx::query(USER_IN).bind(company.as_str()).bind(D::id(id));
    find(pool, query, user_from_row).await
}

pub async fn update_user(
    pool: &Pool,
    company: &CompanySlug,
    id: Uuid,
    patch: &UserPatch,
    now: Time,
) -> Result<Option<User>> {
    update(pool, company, id, patch, now, false).await
}

pub async fn update_company_user(
    pool: &Pool,
    company: &CompanySlug,
    id: Uuid,
    patch: &UserPatch,
    now: Time,
) -> Result<Option<User>> {
    update(pool, company, id, patch, now, true).await
}

/// [`update_user`], refusing with `keep_admin` a change that leaves the company without
/// an enabled admin.
async fn update(
    pool: &Pool,
    company: &CompanySlug,
    id: Uuid,
    patch: &UserPatch,
    now: Time,
    keep_admin: bool,
) -> Result<Option<User>> {
    let mut tx = D::begin(pool, Lock::Rows).await?;
    if keep_admin {
        lock_company(&mut tx, company).await?;
    }
    let query = sqlx::query(USER_IN).bind(company.as_str()).bind(D::id(id));
    let Some(before) = query.fetch_optional(&mut *tx).await? else {
        return Ok(None);
    };
    let before = user_from_row(&before)?;
    let stays_admin = !patch.disabled.unwrap_or(before.disabled)
        && patch
            .roles
            .as_deref()
            .unwrap_or(&before.roles)
            .contains(&Role::Admin);
    if keep_admin && !stays_admin {
        another_admin(&mut tx, company, &before).await?;
    }
    let query = sqlx::query(UPDATE)
        .bind(patch.roles.as_deref().map(D::words))
        .bind(patch.disabled)
        .bind(&patch.password_hash)
        .bind(stored_time(now))
        .bind(D::id(id))
        .bind(company.as_str())
        .bind(patch.name.is_some())
        .bind(patch.name.clone().flatten())
        .bind(patch.email.is_some())
        .bind(patch.email.clone().flatten());
    let Some(after) = query.fetch_optional(&mut *tx).await? else {
        return Ok(None);
    };
    let mut user = user_from_row(&after)?;
    // A new password, a changed role or a disabled account: what was issued under the
    // old terms is revoked with the change.
    if patch.password_hash.is_some()
        || user.roles != before.roles
        || (user.disabled && !before.disabled)
    {
        revocations::revoke_everything(&mut tx, Owner::User(id), now).await?;
        match user_by_id(&mut *tx, id).await? {
            Some(revoked) => user = revoked,
            None => return Ok(None),
        }
    }
    tx.commit().await?;
    Ok(Some(user))
}

pub async fn delete_user_in(
    pool: &Pool,
    company: &CompanySlug,
    id: Uuid,
    now: Time,
) -> Result<bool> {
    delete_in(pool, company, id, now, false).await
}

pub async fn delete_company_user(
    pool: &Pool,
    company: &CompanySlug,
    id: Uuid,
    now: Time,
) -> Result<bool> {
    delete_in(pool, company, id, now, true).await
}

/// [`delete_user_in`], refusing with `keep_admin` to delete the company's last enabled
/// admin.
async fn delete_in(
    pool: &Pool,
    company: &CompanySlug,
    id: Uuid,
    now: Time,
    keep_admin: bool,
) -> Result<bool> {
    let mut tx = D::begin(pool, Lock::Rows).await?;
    if keep_admin {
        lock_company(&mut tx, company).await?;
        let query = sqlx::query(USER_IN).bind(company.as_str()).bind(D::id(id));
        let Some(before) = query.fetch_optional(&mut *tx).await? else {
            return Ok(false);
        };
        another_admin(&mut tx, company, &user_from_row(&before)?).await?;
    }
    let query = sqlx::query(
        "DELETE FROM users WHERE id = $1 AND company_id = (SELECT id FROM companies WHERE slug = $2) \
         RETURNING id",
    )
    .bind(D::id(id))
    .bind(company.as_str());
    let deleted = delete_and_revoke(&mut tx, query, now).await?;
    tx.commit().await?;
    Ok(deleted)
}

/// Takes `company`'s row lock for the rest of `tx`, so that the changes that could take
/// away its last admin take turns: each one then counts the admins the previous one left.
/// An update that changes nothing locks the row in PostgreSQL (SQLite's write lock,
/// taken when the transaction began, already serialises every writer).
async fn lock_company(
    tx: &mut <<D as Dialect>::Db as sqlx::Database>::Connection,
    company: &CompanySlug,
) -> Result<()> {
    sqlx::query("UPDATE companies SET slug = slug WHERE slug = $1")
        .bind(company.as_str())
        .execute(&mut *tx)
        .await?;
    Ok(())
}

/// `Ok` unless `user` is the last enabled admin of `company`, which is then a
/// [`StoreError::Conflict`]: the change at hand would leave the company with no admin.
async fn another_admin(
    tx: &mut <<D as Dialect>::Db as sqlx::Database>::Connection,
    company: &CompanySlug,
    user: &User,
) -> Result<()> {
    if user.disabled || !user.roles.contains(&Role::Admin) {
        return Ok(());
    }
    let rows = sqlx::query(USERS_IN)
        .bind(company.as_str())
        .fetch_all(&mut *tx)
        .await?;
    for row in &rows {
        let other = user_from_row(row)?;
        if other.id != user.id && !other.disabled && other.roles.contains(&Role::Admin) {
            return Ok(());
        }
    }
    Err(StoreError::Conflict(format!(
        "company {company} would have no enabled admin: make another user an admin first"
    )))
}

pub async fn find_user_by_id(pool: &Pool, id: Uuid) -> Result<Option<User>> {
    user_by_id(pool, id).await
}

/// The user `id`, through a pool or a transaction.
pub(crate) async fn user_by_id(ex: impl Exec<'_>, id: Uuid) -> Result<Option<User>> {
    let row = sqlx::query(USER_BY_ID)
        .bind(D::id(id))
        .fetch_optional(ex)
        .await?;
    row.as_ref().map(user_from_row).transpose()
}
