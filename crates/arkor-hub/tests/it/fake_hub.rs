//! A minimal Hugging Face Hub on loopback: one thread per connection, `Connection: close`.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

pub struct FakeHub {
    addr: std::net::SocketAddr,
    requests: Arc<AtomicUsize>,
    stopped: Arc<AtomicBool>,
}

const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";

/// Files of each fake repo.
fn files(repo: &str) -> Option<Vec<&'static str>> {
    Some(match repo {
        "acme/tiny" => vec![
            "README.md",
            "config.json",
            "tokenizer.json",
            "tokenizer_config.json",
            "model.safetensors.index.json",
            "model-00001-of-00002.safetensors",
            "model-00002-of-00002.safetensors",
        ],
        "acme/pytorch-only" => vec!["config.json", "tokenizer.json", "pytorch_model.bin"],
        "acme/chats" => vec!["README.md", "data/train.jsonl", "data/test.jsonl"],
        "acme/gated" => vec!["config.json"],
        _ => return None,
    })
}

/// The bytes of a fake file.
pub fn content(repo: &str, file: &str) -> Vec<u8> {
    if file == "model.safetensors.index.json" {
        return br#"{"metadata":{},"weight_map":{"a":"model-00001-of-00002.safetensors","b":"model-00002-of-00002.safetensors"}}"#.to_vec();
    }
    format!("{repo}/{file}: {}\n", "x".repeat(file.len() * 7)).into_bytes()
}

impl FakeHub {
    pub fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(AtomicUsize::new(0));
        let stopped = Arc::new(AtomicBool::new(false));
        let (r, s) = (requests.clone(), stopped.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                if s.load(Ordering::SeqCst) {
                    // Refuse: drop the connection without answering, like a dead host.
                    continue;
                }
                r.fetch_add(1, Ordering::SeqCst);
                std::thread::spawn(move || handle(stream));
            }
        });
        Self { addr, requests, stopped }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }

    pub fn stop(&self) {
        self.stopped.store(true, Ordering::SeqCst);
    }
}

fn handle(mut stream: TcpStream) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    let path = line.split_whitespace().nth(1).unwrap_or("/").to_owned();
    let mut range = None;
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).unwrap() == 0 || h.trim().is_empty() {
            break;
        }
        if let Some(v) = h.to_ascii_lowercase().strip_prefix("range: bytes=") {
            let (a, b) = v.trim().split_once('-').unwrap();
            range = Some((a.parse::<usize>().unwrap(), b.parse::<usize>().ok()));
        }
    }
    let path = path.split('?').next().unwrap().to_owned();
    let (status, headers, body) = route(&path, range);
    let mut out =
        format!("HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n", body.len());
    for (k, v) in headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str("\r\n");
    let _ = stream.write_all(out.as_bytes());
    let _ = stream.write_all(&body);
}

fn route(
    path: &str,
    range: Option<(usize, Option<usize>)>,
) -> (&'static str, Vec<(String, String)>, Vec<u8>) {
    let not_found = ("404 Not Found", vec![], b"{\"error\":\"Repository not found\"}".to_vec());
    // /api/{models,datasets}/{owner}/{name}/revision/main
    if let Some(rest) = path.strip_prefix("/api/") {
        let parts: Vec<&str> = rest.split('/').collect();
        let repo = format!("{}/{}", parts.get(1).unwrap_or(&""), parts.get(2).unwrap_or(&""));
        if repo == "acme/gated" {
            return ("401 Unauthorized", vec![], b"{\"error\":\"gated\"}".to_vec());
        }
        let Some(list) = files(&repo) else { return not_found };
        let siblings: Vec<String> =
            list.iter().map(|f| format!("{{\"rfilename\":\"{f}\"}}")).collect();
        let body = format!("{{\"sha\":\"{COMMIT}\",\"siblings\":[{}]}}", siblings.join(","));
        return (
            "200 OK",
            vec![("Content-Type".into(), "application/json".into())],
            body.into_bytes(),
        );
    }
    // /[datasets/]{owner}/{name}/resolve/main/{file...}
    let p = path.strip_prefix("/datasets").unwrap_or(path);
    let parts: Vec<&str> = p.trim_start_matches('/').splitn(5, '/').collect();
    if parts.len() < 5 || parts[2] != "resolve" {
        return not_found;
    }
    let repo = format!("{}/{}", parts[0], parts[1]);
    let file = parts[4];
    if !files(&repo).is_some_and(|l| l.contains(&file)) {
        return not_found;
    }
    let data = content(&repo, file);
    let (start, end) = match range {
        Some((a, b)) => (a, b.unwrap_or(data.len() - 1).min(data.len() - 1)),
        None => (0, data.len() - 1),
    };
    let headers = vec![
        ("x-repo-commit".to_owned(), COMMIT.to_owned()),
        ("etag".to_owned(), format!("\"{:x}\"", fnv(&data))),
        ("content-range".to_owned(), format!("bytes {start}-{end}/{}", data.len())),
    ];
    ("206 Partial Content", headers, data[start..=end].to_vec())
}

fn fnv(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf29ce484222325, |h, b| (h ^ *b as u64).wrapping_mul(0x100000001b3))
}
