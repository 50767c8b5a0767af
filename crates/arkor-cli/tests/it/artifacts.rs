//! Artifacts in the data directory (the default) and in an S3-compatible bucket
//! (`--artifacts`): one test, run against each. With the bucket, every file lands there with
//! the bytes the backend wrote, and a backend that lost its data directory's files serves,
//! chats with and trains on them again from the bucket.

use std::path::Path;

use arkor_server::artifacts::Artifacts;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::server::{Api, QA, dataset, sha2_check::digest, start_with, train_config};

#[tokio::test(flavor = "multi_thread")]
async fn artifacts_in_the_data_directory() {
    uploads_train_export_and_chat(None).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn artifacts_in_a_bucket_outlive_the_data_directory() {
    let Some(bucket) = arkor_test_support::s3::bucket() else { return };
    uploads_train_export_and_chat(Some(bucket)).await;
}

/// The bucket test with its jobs on PostgreSQL: the second backend starts on an empty data
/// directory, as a replaced machine would.
#[test]
fn artifacts_in_a_bucket_with_postgres() {
    crate::server::on_postgres(artifacts_in_a_bucket_outlive_the_data_directory);
}

async fn uploads_train_export_and_chat(bucket: Option<String>) {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let settings = |c: &mut arkor_server::ServerConfig| {
        c.local_paths = Some(false);
        c.artifacts = bucket.clone();
    };
    let backend = start_with(&data, settings).await;
    let mut api = Api::sign_up(&backend.url(), "artifacts").await;
    let rows = std::fs::read(dataset(tmp.path())).unwrap();
    let resp = api
        .http
        .post(format!("{}{}", api.base, api.scoped("/v1/datasets?filename=train.jsonl")))
        .header(crate::server::CLIENT.0, crate::server::CLIENT.1)
        .bearer_auth(&api.token)
        .body(rows.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    let uploaded: Value = resp.json().await.unwrap();
    let mut config = train_config(Path::new("unused"), 120, 60);
    config["datasetSource"] = uploaded["datasetSource"].clone();
    let job = api.submit(config.clone()).await;
    let names: Vec<String> = api.follow(&job, None).await.into_iter().map(|e| e.1).collect();
    assert_eq!(names.last().map(String::as_str), Some("training.completed"), "{names:?}");

    let sets = list(&api, &job).await;
    let steps: Vec<u64> =
        sets["artifacts"].as_array().unwrap().iter().map(|s| s["step"].as_u64().unwrap()).collect();
    assert_eq!(steps, [60, 120]);
    let export = api.export(&job, json!({"format": "gguf-lora"})).await;
    assert_eq!(export["status"], "completed", "{export}");
    let export_file = export["files"][0].clone();
    let export_path = export_file["pathname"].as_str().unwrap().to_owned();
    assert_eq!(chat(&api, &job).await, QA[0].1);
    let (status, bytes) = api.download(&job, &export_path).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(digest(&bytes), export_file["sha256"].as_str().unwrap());
    backend.shutdown().await;

    let Some(bucket) = bucket.clone() else {
        // Without a bucket the data directory is the only copy.
        assert!(data.join("jobs").join(&job).join("final/adapter_model.safetensors").is_file());
        return;
    };
    // Everything the backend wrote is in the bucket, byte for byte: read back through a
    // client of its own into an empty folder.
    let copy = tmp.path().join("from-bucket");
    let reader = Artifacts::open(copy.clone(), &bucket).await.unwrap();
    reader.fetch_dir(&copy, |_| true).await.unwrap();
    let mut compared = 0;
    for set in sets["artifacts"].as_array().unwrap() {
        for f in set["files"].as_array().unwrap() {
            let rel = format!("jobs/{job}/{}", f["pathname"].as_str().unwrap());
            let theirs = std::fs::read(copy.join(&rel)).unwrap_or_else(|e| panic!("{rel}: {e}"));
            assert_eq!(digest(&theirs), f["sha256"].as_str().unwrap(), "{rel}");
            assert_eq!(theirs, std::fs::read(data.join(&rel)).unwrap(), "{rel}");
            compared += 1;
        }
    }
    assert!(compared >= 4, "{sets}");
    let export_copy = std::fs::read(copy.join(format!("jobs/{job}/{export_path}"))).unwrap();
    assert_eq!(digest(&export_copy), export_file["sha256"].as_str().unwrap());
    let dataset_copy = uploaded["datasetSource"]["path"].as_str().unwrap();
    let dataset_rel = Path::new(dataset_copy).strip_prefix(&data).unwrap();
    assert_eq!(std::fs::read(copy.join(dataset_rel)).unwrap(), rows);

    // The data directory loses its files: the jobs' folders and the uploads, or (with
    // PostgreSQL holding the rows) everything.
    if crate::server::on_postgres_now() {
        std::fs::remove_dir_all(&data).unwrap();
    } else {
        std::fs::remove_dir_all(data.join("jobs")).unwrap();
        std::fs::remove_dir_all(data.join("datasets")).unwrap();
    }
    let backend = start_with(&data, settings).await;
    api.base = backend.url();
    // The same artifacts, the same bytes, the same answers.
    assert_eq!(list(&api, &job).await, sets);
    let (status, bytes) = api.download(&job, "final/adapter_model.safetensors").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        bytes,
        std::fs::read(copy.join(format!("jobs/{job}/final/adapter_model.safetensors"))).unwrap()
    );
    let (_, exports) = api.send("GET", &api.scoped(&format!("/v1/jobs/{job}/exports")), None).await;
    assert_eq!(exports["exports"][0]["id"], export["id"], "{exports}");
    assert_eq!(exports["exports"][0]["status"], "completed", "{exports}");
    let (status, bytes) = api.download(&job, &export_path).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(digest(&bytes), export_file["sha256"].as_str().unwrap());
    assert_eq!(chat(&api, &job).await, QA[0].1);
    // A new job on the uploaded dataset trains from the bucket's copy.
    let again = api.submit(config).await;
    let events = api.follow(&again, None).await;
    assert_eq!(events.last().map(|e| e.1.as_str()), Some("training.completed"));
    assert_eq!(events[0].2["metadata"]["datasetSha256"], digest(&rows));
    backend.shutdown().await;
}

async fn list(api: &Api, job: &str) -> Value {
    let (status, body) =
        api.send("GET", &api.scoped(&format!("/v1/jobs/{job}/artifacts")), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

/// The final adapter's greedy answer to the first question it was taught.
async fn chat(api: &Api, job: &str) -> String {
    let body = json!({"messages": [{"role": "user", "content": QA[0].0}], "temperature": 0,
        "maxTokens": 40, "stream": false, "adapter": {"kind": "final", "jobId": job}});
    let (status, reply) = api.send("POST", &api.scoped("/v1/inference/chat"), Some(body)).await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    reply["choices"][0]["message"]["content"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bad_artifact_store_names_the_flag_and_what_is_wrong() {
    let tmp = tempfile::tempdir().unwrap();
    let start = |url: &str| {
        let mut config = arkor_server::ServerConfig::new(
            tmp.path().join("data"),
            0,
            arkor_server::WorkerCommand { program: "arkor".into(), args: vec![] },
        );
        config.artifacts = Some(url.to_owned());
        arkor_server::Backend::start(config)
    };
    let err = start("gs://bucket").await.err().unwrap().to_string();
    assert!(err.contains("(--artifacts)") && err.contains("expected s3://bucket"), "{err}");
    let Some(bucket) = arkor_test_support::s3::bucket() else { return };
    // A bucket the server does not have: refused at start, not at the first checkpoint.
    let missing = format!("{}-missing", bucket.split('/').take(3).collect::<Vec<_>>().join("/"));
    let err = start(&missing).await.err().unwrap().to_string();
    assert!(
        err.contains("(--artifacts)") && err.contains(&missing) && err.contains("NoSuchBucket"),
        "{err}"
    );
}
