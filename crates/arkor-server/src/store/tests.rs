//! Store tests that need no server: the queue's order and the positions listings report.

use arkor_protocol::event::EventKind;
use arkor_protocol::job::{Job, JobConfig, JobProgress, JobStatus};
use rusqlite::Connection;

use super::*;

fn queue_db(jobs: usize) -> Connection {
    let conn = Connection::open_in_memory().unwrap();
    conn.pragma_update(None, "foreign_keys", "ON").unwrap();
    migrate(&conn).unwrap();
    conn.execute_batch(
        "INSERT INTO orgs VALUES ('o', 'o', 'o', 0);
         INSERT INTO projects VALUES ('p', 'o', 'p', 'p', 0);",
    )
    .unwrap();
    for i in 1..=jobs {
        let job = Job {
            id: format!("j{i}"),
            org_id: "o".into(),
            project_id: "p".into(),
            name: format!("run-{i}"),
            status: JobStatus::Queued,
            config: JobConfig { model: "arkor/tiny".into(), ..JobConfig::default() },
            error: None,
            created_at: String::new(),
            started_at: None,
            completed_at: None,
            progress: JobProgress::default(),
            queue_position: None,
        };
        insert_job(&conn, &job).unwrap();
    }
    conn
}

/// `(id, queue position)` of every job, oldest first.
fn positions(conn: &Connection) -> Vec<(String, Option<u64>)> {
    let q = JobQuery { limit: 100, ..JobQuery::default() };
    let page = list_jobs(conn, "p", &q).unwrap();
    page.jobs.into_iter().rev().map(|j| (j.id, j.queue_position)).collect()
}

fn expect(conn: &Connection, want: &[(&str, Option<u64>)]) {
    let want: Vec<(String, Option<u64>)> =
        want.iter().map(|(i, p)| ((*i).to_owned(), *p)).collect();
    assert_eq!(positions(conn), want);
}

#[test]
fn positions_follow_submission_then_move_to_front() {
    let mut conn = queue_db(4);
    expect(&conn, &[("j1", Some(1)), ("j2", Some(2)), ("j3", Some(3)), ("j4", Some(4))]);

    assert!(move_to_front(&conn, "j3").unwrap());
    assert!(move_to_front(&conn, "j4").unwrap());
    expect(&conn, &[("j1", Some(3)), ("j2", Some(4)), ("j3", Some(2)), ("j4", Some(1))]);
    assert_eq!(job(&conn, "j4").unwrap().unwrap().queue_position, Some(1));
    assert_eq!(job_in_project(&conn, "p", "j3").unwrap().unwrap().queue_position, Some(2));

    // A cancelled job leaves the queue; the ones behind it move up.
    append_event(&mut conn, "j3", &EventKind::Cancelled { step: None }).unwrap();
    expect(&conn, &[("j1", Some(2)), ("j2", Some(3)), ("j3", None), ("j4", Some(1))]);
    assert!(!move_to_front(&conn, "j3").unwrap(), "a cancelled job is not queued");
    assert!(!move_to_front(&conn, "nope").unwrap());
}

#[test]
fn next_queued_starts_jobs_in_position_order() {
    let conn = queue_db(5);
    assert!(move_to_front(&conn, "j5").unwrap());
    assert!(move_to_front(&conn, "j2").unwrap());
    // Moving the job already at the front keeps it there.
    assert!(move_to_front(&conn, "j2").unwrap());
    let mut by_position: Vec<(u64, String)> =
        positions(&conn).into_iter().map(|(id, p)| (p.unwrap(), id)).collect();
    by_position.sort();
    let expected: Vec<String> = by_position.into_iter().map(|(_, id)| id).collect();
    assert_eq!(expected, ["j2", "j5", "j1", "j3", "j4"]);

    let mut started = vec![];
    while let Some(next) = next_queued(&conn).unwrap() {
        assert_eq!(next.queue_position, Some(1), "{} starts next", next.id);
        assert!(mark_running(&conn, &next.id).unwrap());
        assert!(!move_to_front(&conn, &next.id).unwrap(), "a running job is not queued");
        assert_eq!(job(&conn, &next.id).unwrap().unwrap().queue_position, None);
        started.push(next.id);
    }
    assert_eq!(started, expected);
}
