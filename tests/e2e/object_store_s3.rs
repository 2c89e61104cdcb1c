//! Sources, state and usage files on S3, against a real moto server on loopback.
//! `.ci/run` installs moto (`pip install "moto[server]"`); without it this test fails and
//! says so rather than skipping.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::{ArrayRef, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use futures::TryStreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use parquet::arrow::ArrowWriter;

use crate::support::*;

pub(crate) struct Moto {
    child: Child,
    pub(crate) endpoint: String,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn start_moto() -> Moto {
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let child = Command::new("moto_server")
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start moto_server ({e}); install it with: pip install \"moto[server]\""));
    let moto = Moto {
        child,
        endpoint: format!("http://127.0.0.1:{port}"),
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "moto_server did not listen on {port} within 30 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    moto
}

pub(crate) fn create_bucket(endpoint: &str, bucket: &str) {
    let address = endpoint.trim_start_matches("http://");
    let mut stream = TcpStream::connect(address).expect("connect to moto");
    write!(
        stream,
        "PUT /{bucket} HTTP/1.1\r\nHost: {address}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    assert!(
        response.starts_with("HTTP/1.1 200"),
        "bucket creation failed: {response}"
    );
}

pub(crate) const ENV: [(&str, &str); 4] = [
    ("AWS_ACCESS_KEY_ID", "testing"),
    ("AWS_SECRET_ACCESS_KEY", "testing"),
    ("AWS_REGION", "us-east-1"),
    ("AWS_ALLOW_HTTP", "true"),
];

pub(crate) fn store(endpoint: &str) -> Arc<dyn ObjectStore> {
    let mut builder = AmazonS3Builder::new()
        .with_bucket_name("warehouse")
        .with_endpoint(endpoint)
        .with_allow_http(true);
    builder = builder
        .with_access_key_id("testing")
        .with_secret_access_key("testing")
        .with_region("us-east-1");
    Arc::new(builder.build().expect("s3 store"))
}

/// A moto server with the bucket `warehouse`, and a runtime to reach it from a test.
pub(crate) struct Warehouse {
    pub(crate) moto: Moto,
    pub(crate) runtime: tokio::runtime::Runtime,
    pub(crate) s3: Arc<dyn ObjectStore>,
}

impl Warehouse {
    pub(crate) fn start() -> Self {
        let moto = start_moto();
        create_bucket(&moto.endpoint, "warehouse");
        let s3 = store(&moto.endpoint);
        Warehouse {
            moto,
            runtime: tokio::runtime::Runtime::new().unwrap(),
            s3,
        }
    }

    /// Stores `bytes` at `path` in the bucket.
    pub(crate) fn put(&self, path: &str, bytes: Vec<u8>) {
        self.runtime
            .block_on(self.s3.put(&ObjectPath::from(path), PutPayload::from(bytes)))
            .expect("upload");
    }
}

fn parquet_bytes(rows: &[(&str, i64)]) -> Vec<u8> {
    let schema = Arc::new(Schema::new(vec![
        Field::new("account", DataType::Utf8, false),
        Field::new("qty", DataType::Int64, false),
    ]));
    let accounts: ArrayRef = Arc::new(StringArray::from(rows.iter().map(|r| r.0).collect::<Vec<_>>()));
    let qty: ArrayRef = Arc::new(Int64Array::from(rows.iter().map(|r| r.1).collect::<Vec<_>>()));
    let batch = RecordBatch::try_new(schema.clone(), vec![accounts, qty]).unwrap();
    let mut bytes = Vec::new();
    let mut writer = ArrowWriter::try_new(&mut bytes, schema, None).unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();
    bytes
}

async fn keys_under(store: &Arc<dyn ObjectStore>, prefix: &str) -> Vec<String> {
    let mut keys: Vec<String> = store
        .list(Some(&ObjectPath::from(prefix)))
        .map_ok(|m| m.location.to_string())
        .try_collect()
        .await
        .unwrap();
    keys.sort();
    keys
}

#[test]
fn sources_state_and_files_on_s3() {
    let warehouse = Warehouse::start();
    let (moto, runtime, s3) = (&warehouse.moto, &warehouse.runtime, &warehouse.s3);
    let put = |path: &str, rows: &[(&str, i64)]| warehouse.put(path, parquet_bytes(rows));
    put("exports/events/day=2026-11-18/part.parquet", &[("A1", 1), ("A2", 2)]);

    let project = TestProject::new(
        &PROJECT
            .edit("location: data/events/", "location: s3://warehouse/exports/events/")
            .edit("path: out", "path: s3://warehouse/out")
            .edit("name: e2e", "name: e2e\nstate: s3://warehouse/state"),
        &[("usage.yml", MODEL)],
    );
    let mut env: Vec<(&str, &str)> = ENV.to_vec();
    env.push(("AWS_ENDPOINT", &moto.endpoint));

    let first = dinmo_in(project.path(), &["run"], &env);
    exits(&first, 0);
    let second = dinmo_in(project.path(), &["run"], &env);
    exits(&second, 0);
    assert!(stdout(&second).contains("new rows: 0"), "{}", describe(&second));
    put("exports/events/day=2026-11-19/part.parquet", &[("A1", 3)]);
    let third = dinmo_in(project.path(), &["run"], &env);
    exits(&third, 0);
    assert!(stdout(&third).contains("new rows: 1"), "{}", describe(&third));

    runtime.block_on(async {
        let files = keys_under(s3, "out/usage.files").await;
        assert_eq!(files.len(), 2, "{files:#?}");
        let mut lines = 0;
        for file in &files {
            let bytes = s3
                .get(&ObjectPath::from(file.as_str()))
                .await
                .unwrap()
                .bytes()
                .await
                .unwrap();
            lines += String::from_utf8(bytes.to_vec()).unwrap().lines().count() - 1;
        }
        assert_eq!(lines, 3, "every row exactly once");
        assert_eq!(keys_under(s3, "state/usage.files/runs").await.len(), 3);
        assert_eq!(keys_under(s3, "state/usage.files/snapshot").await.len(), 2);
        assert!(keys_under(s3, "state/usage.files/pending").await.is_empty());
    });
    // The history, read from S3 where the state is: three runs, three rows sent once each.
    let history = dinmo_in(
        project.path(),
        &[
            "query",
            "SELECT count(DISTINCT r.run_id) AS runs, count(s.row_key) AS sent, sum(s.quantity) AS q \
             FROM runs r LEFT JOIN sent s USING (sync_id, run_id)",
            "--format",
            "csv",
        ],
        &env,
    );
    exits(&history, 0);
    assert_eq!(
        stdout(&history),
        "runs,sent,q\n3,3,6.000000000\n",
        "{}",
        describe(&history)
    );
    // Reconciled against a usage export holding the first day only: the state's parts are read
    // from S3, the second day's row is missing, and the repair rewrites the parts on S3.
    let export = project.path().join("usage-export.csv");
    std::fs::write(
        &export,
        "Account Number,Unit of Measure,Start Date,Quantity\nA1,API_CALL,2026-11-18,1\nA2,API_CALL,2026-11-18,2\n",
    )
    .unwrap();
    let export = export.display().to_string();
    let reconciled = dinmo_in(
        project.path(),
        &["reconcile", "--zuora-export", &export, "--repair", "missing"],
        &env,
    );
    exits(&reconciled, 4);
    assert!(
        stdout(&reconciled).contains("equal 2 · missing 1")
            && stdout(&reconciled).contains("repaired: 1 missing row(s)"),
        "{}",
        describe(&reconciled)
    );
    let plan = dinmo_in(project.path(), &["plan"], &env);
    exits(&plan, 0);
    assert!(stdout(&plan).contains("new rows: 1"), "{}", describe(&plan));
    assert!(
        !project.path().join(".dinmo").exists(),
        "no local state when state is on S3"
    );
}

/// A glob with a wildcard in a `key=value` folder segment and `exclude:` on S3: the files they
/// select, and only those, are read.
#[test]
fn globs_and_exclude_select_files_on_s3() {
    let warehouse = Warehouse::start();
    let moto = &warehouse.moto;
    let put = |path: &str, rows: &[(&str, i64)]| warehouse.put(path, parquet_bytes(rows));
    put("exports/events/day=2026-11-18/part-0.parquet", &[("A1", 1), ("A2", 2)]);
    put("exports/events/day=2026-11-19/part-0.parquet", &[("A3", 3)]);
    put("exports/events/day=2026-11-19/attempt-1.parquet", &[("A3", 3)]);
    put("exports/events/notes/other.parquet", &[("N1", 9)]);
    let project = TestProject::new(
        &PROJECT.edit(
            "    location: data/events/\n",
            "    location: s3://warehouse/exports/events/day=*/*.parquet\n    options:\n      exclude: [\"*/attempt-*\"]\n",
        ),
        &[("usage.yml", MODEL)],
    );
    let mut env: Vec<(&str, &str)> = ENV.to_vec();
    env.push(("AWS_ENDPOINT", &moto.endpoint));
    let out = dinmo_in(project.path(), &["run"], &env);
    exits(&out, 0);
    assert!(stdout(&out).contains("new rows: 3"), "{}", describe(&out));
}
