//! `arkor login`, `arkor logout`, `arkor whoami`.

use std::io::Write;
use std::process::ExitCode;

use anyhow::{Context, bail};
use arkor::{Client, Credentials, CredentialsKind};

use crate::args::{LoginArgs, LogoutArgs};
use crate::config::Global;

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Runtime::new().context("failed to start the async runtime")
}

pub fn login(global: &Global, args: LoginArgs) -> anyhow::Result<ExitCode> {
    let url = args.url.unwrap_or_else(|| local_url(global));
    let path = arkor::credentials_path(&global.data_dir);
    runtime()?.block_on(async {
        let creds = match args.token {
            Some(token) => {
                let me = Client::new(&url, Some(token.clone())).me().await.with_context(|| {
                    format!("the backend at {url} did not accept the token; check it and the URL")
                })?;
                println!("Logged in to {url} as {} ({} organisation(s))", me.user.id, me.orgs.len());
                Credentials { kind: CredentialsKind::Token, token, base_url: url.clone(), org_slug: None, anonymous_id: None }
            }
            None => {
                let anon = Client::new(&url, None).anonymous().await.with_context(|| {
                    format!("cannot reach the backend at {url}: start one with `arkor server` or pass --url")
                })?;
                println!("Logged in to {url} anonymously (organisation {})", anon.personal_org.slug);
                Credentials {
                    kind: CredentialsKind::Anonymous,
                    token: anon.token,
                    base_url: url.clone(),
                    org_slug: Some(anon.personal_org.slug),
                    anonymous_id: Some(anon.anonymous_id),
                }
            }
        };
        arkor::write_credentials(&path, &creds)?;
        println!("Credentials saved to {}", path.display());
        Ok(ExitCode::SUCCESS)
    })
}

pub fn logout(global: &Global, args: LogoutArgs) -> anyhow::Result<ExitCode> {
    let path = arkor::credentials_path(&global.data_dir);
    if !path.exists() {
        println!("Not logged in (no {}).", path.display());
        return Ok(ExitCode::SUCCESS);
    }
    if !args.force {
        print!(
            "Remove the credentials in {}? Anonymous work can only be reached with them. [y/N] ",
            path.display()
        );
        std::io::stdout().flush()?;
        let mut answer = String::new();
        std::io::stdin().read_line(&mut answer)?;
        if !matches!(answer.trim(), "y" | "Y" | "yes") {
            println!("Kept.");
            return Ok(ExitCode::from(1));
        }
    }
    std::fs::remove_file(&path).with_context(|| format!("failed to remove {}", path.display()))?;
    println!("Logged out.");
    Ok(ExitCode::SUCCESS)
}

pub fn whoami(global: &Global) -> anyhow::Result<ExitCode> {
    let path = arkor::credentials_path(&global.data_dir);
    let Some(creds) = arkor::read_credentials(&path)? else {
        bail!("not logged in: run `arkor login` (or `arkor start`, which logs in anonymously)");
    };
    runtime()?.block_on(async {
        let (url, embedded) = match creds.kind {
            CredentialsKind::Token => (creds.base_url.clone(), None),
            CredentialsKind::Anonymous => super::server::local_backend(global).await?,
        };
        let me = Client::new(&url, Some(creds.token.clone())).me().await;
        if let Some(b) = embedded {
            b.shutdown().await;
        }
        let me = me.with_context(|| {
            format!("the backend at {url} refused the stored token: run `arkor login` again")
        })?;
        let kind = match creds.kind {
            CredentialsKind::Anonymous => "anonymous",
            CredentialsKind::Token => "token",
        };
        println!("user:    {} ({kind})", me.user.id);
        for org in &me.orgs {
            println!("org:     {} ({})", org.slug, org.name);
        }
        println!("backend: {url}");
        Ok(ExitCode::SUCCESS)
    })
}

/// The local backend's URL: the running one, else the default port.
fn local_url(global: &Global) -> String {
    arkor_server::discover(&global.data_dir)
        .map_or_else(|| arkor::DEFAULT_BACKEND_URL.to_owned(), |d| d.url)
}
