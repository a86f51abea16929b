//! The app's own data — users, books, reading events, reviews and lists — in the same
//! database as its keys, with its own SeaORM migrations (tracked in `seaql_migrations`, apart
//! from keyward's `keyward_migrations`).

use sea_orm::{ActiveModelTrait, ConnectionTrait, DatabaseConnection, EntityTrait, Set};
use sea_orm_migration::prelude::*;

/// People who log in.
pub mod user {
    use sea_orm::entity::prelude::*;

    /// A user.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "books_users")]
    pub struct Model {
        /// UUID v7 as text; the `owner` of the user's API keys.
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        /// Login name.
        #[sea_orm(unique)]
        pub username: String,
        /// Argon2id PHC string.
        pub password_hash: String,
        /// `admin` or `user`.
        pub role: String,
        /// Creation time.
        pub created_at: ChronoDateTimeUtc,
    }

    /// No relations are navigated.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// The shared book catalog.
pub mod book {
    use sea_orm::entity::prelude::*;
    use serde::Serialize;

    /// A book.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize)]
    #[sea_orm(table_name = "books_books")]
    pub struct Model {
        /// Id.
        #[sea_orm(primary_key)]
        pub id: i64,
        /// Title.
        pub title: String,
        /// Author.
        pub author: String,
        /// ISBN-13, if known.
        pub isbn: Option<String>,
        /// Who added it.
        pub added_by: Option<String>,
        /// When it was added.
        pub created_at: ChronoDateTimeUtc,
    }

    /// No relations are navigated.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// What a user did with a book: started, finished, dropped.
pub mod reading_event {
    use sea_orm::entity::prelude::*;
    use serde::Serialize;

    /// A reading event.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize)]
    #[sea_orm(table_name = "books_reading_events")]
    pub struct Model {
        /// Id.
        #[sea_orm(primary_key)]
        pub id: i64,
        /// The book.
        pub book_id: i64,
        /// The reader.
        pub user_id: String,
        /// `want`, `started`, `finished` or `dropped`.
        pub kind: String,
        /// When it happened.
        pub created_at: ChronoDateTimeUtc,
    }

    /// No relations are navigated.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// Reviews of books.
pub mod review {
    use sea_orm::entity::prelude::*;
    use serde::Serialize;

    /// A review.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize)]
    #[sea_orm(table_name = "books_reviews")]
    pub struct Model {
        /// Id.
        #[sea_orm(primary_key)]
        pub id: i64,
        /// The book.
        pub book_id: i64,
        /// The reviewer.
        pub user_id: String,
        /// 1 to 5.
        pub rating: i32,
        /// The text.
        pub body: String,
        /// When it was written.
        pub created_at: ChronoDateTimeUtc,
    }

    /// No relations are navigated.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// Reading lists.
pub mod list {
    use sea_orm::entity::prelude::*;
    use serde::Serialize;

    /// A list.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize)]
    #[sea_orm(table_name = "books_lists")]
    pub struct Model {
        /// Id.
        #[sea_orm(primary_key)]
        pub id: i64,
        /// The list's owner.
        pub user_id: String,
        /// Its name.
        pub name: String,
        /// When it was made.
        pub created_at: ChronoDateTimeUtc,
    }

    /// No relations are navigated.
    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// The app's migrations (SeaORM's default history table, `seaql_migrations`).
#[derive(Debug)]
pub struct Migrator;

impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![Box::new(CreateTables)]
    }
}

#[derive(Debug)]
struct CreateTables;

impl MigrationName for CreateTables {
    fn name(&self) -> &'static str {
        "m20260101_000001_create_books_tables"
    }
}

// The trait is declared with `&SchemaManager` and `async_trait` needs the same spelling.
#[allow(elided_lifetimes_in_paths)]
#[async_trait::async_trait]
impl MigrationTrait for CreateTables {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let schema = sea_orm::Schema::new(manager.get_database_backend());
        let tables = [
            schema.create_table_from_entity(user::Entity),
            schema.create_table_from_entity(book::Entity),
            schema.create_table_from_entity(reading_event::Entity),
            schema.create_table_from_entity(review::Entity),
            schema.create_table_from_entity(list::Entity),
        ];
        for mut table in tables {
            manager
                .create_table(table.if_not_exists().to_owned())
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            "books_lists",
            "books_reviews",
            "books_reading_events",
            "books_books",
            "books_users",
        ] {
            manager
                .drop_table(
                    Table::drop()
                        .table(Alias::new(table))
                        .if_exists()
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}

/// Runs the app's migrations and keyward's.
///
/// # Errors
///
/// Any migration failure.
pub async fn migrate(db: &DatabaseConnection) -> Result<(), super::AppError> {
    Migrator::up(db, None).await?;
    keyward_sea_orm::migrate(db).await?;
    Ok(())
}

/// Whether the app has no users yet (first start).
///
/// # Errors
///
/// A database failure.
pub async fn is_empty<C: ConnectionTrait>(db: &C) -> Result<bool, DbErr> {
    use sea_orm::PaginatorTrait;
    Ok(user::Entity::find().count(db).await? == 0)
}

/// Inserts a user.
///
/// # Errors
///
/// A database failure (a taken username is a unique violation).
pub async fn insert_user(
    db: &DatabaseConnection,
    username: &str,
    password_hash: String,
    role: &str,
) -> Result<user::Model, DbErr> {
    user::ActiveModel {
        id: Set(uuid::Uuid::now_v7().to_string()),
        username: Set(username.to_owned()),
        password_hash: Set(password_hash),
        role: Set(role.to_owned()),
        created_at: Set(chrono::Utc::now()),
    }
    .insert(db)
    .await
}
