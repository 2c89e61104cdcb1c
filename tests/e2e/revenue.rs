//! The Zuora Revenue destination through the real binary: file mode on disk, api mode against
//! the Revenue simulator (`zuora_sim::revenue`), exactly once through faults and crashes.

use std::collections::{BTreeMap, HashMap};

use zuora_sim::SimConfig;
use zuora_sim::revenue::{RevenueConfig, RevenueFaults, Upload};

use crate::support::*;
use crate::zuora::Sim;

/// One Revenue line per (account, day): amount = qty × 0.5.
const MODEL: &str = r#"model: usage
sql: |
  SELECT 'SO-' || account AS so_line, qty * 0.5 AS amount, 0.5 AS price, qty,
         'SEG-1' AS segments, CASE WHEN qty % 2 = 0 THEN 'API' ELSE 'Storage' END AS sub_product,
         CAST(day AS DATE) AS trx_date
  FROM events
primary_key: [so_line, trx_date]
syncs:
  - destination: revenue
    mapping:
      SO Line ID: so_line
      Usage Amount: amount
      Unit Price: price
      Quantity: qty
      DD_Rev_Segments: segments
      Sub Product: sub_product
      TRX_DATE: trx_date
"#;

fn file_project(extra: &str) -> TestProject {
    let project = format!(
        "name: e2e\nsources:\n  events:\n    location: data/events/\ndestinations:\n  revenue:\n    type: zuora_revenue\n    path: out\n{extra}"
    );
    TestProject::new(&project, &[("usage.yml", MODEL)])
}

fn api_project(sim: &Sim, extra: &str) -> TestProject {
    let project = format!(
        "name: e2e\nsources:\n  events:\n    location: data/events/\ndestinations:\n  revenue:\n    type: zuora_revenue\n    mode: api\n    base_url: {}\n    username: ${{REVPRO_USER}}\n    password: ${{REVPRO_PASSWORD}}\n    role: Revpro API Role\n    clientname: Default\n    max_lines: 3\n{extra}",
        sim.sim.url()
    );
    TestProject::new(&project, &[("usage.yml", MODEL)])
}

/// `project` with room for ten lines a file: the tests' few rows go in one upload.
fn one_file(project: TestProject) -> TestProject {
    let yml = std::fs::read_to_string(project.path().join("dinmo.yml")).unwrap();
    project.write("dinmo.yml", &yml.edit("    max_lines: 3\n", "    max_lines: 10\n"));
    project
}

fn export(project: &TestProject, day: &str, accounts: std::ops::Range<usize>) {
    let names: Vec<String> = accounts.clone().map(|i| format!("A{i:04}")).collect();
    let rows: Vec<(&str, i64)> = names
        .iter()
        .zip(accounts)
        .map(|(n, i)| (n.as_str(), 1 + i as i64))
        .collect();
    project.export_day(day, &rows);
}

fn run(project: &TestProject, args: &[&str], extra: &[(&str, &str)]) -> std::process::Output {
    let defaults = RevenueConfig::default();
    let mut env = vec![
        ("REVPRO_USER", defaults.username.as_str()),
        ("REVPRO_PASSWORD", defaults.password.as_str()),
        ("DINMO_DELIVERY_BATCH_ROWS", "4"),
    ];
    env.extend_from_slice(extra);
    dinmo_in(project.path(), args, &env)
}

fn uploads(sim: &Sim) -> Vec<Upload> {
    sim.sim.revenue.uploads()
}

fn set_faults(sim: &Sim, faults: RevenueFaults) {
    sim.sim.revenue.set_faults(faults);
}

/// (SO Line ID, TRX_DATE) → how many times it was staged.
fn staged_counts(sim: &Sim) -> BTreeMap<(String, String), usize> {
    let mut counts = BTreeMap::new();
    for row in sim.sim.revenue.staged() {
        *counts
            .entry((row["SO Line ID"].clone(), row["TRX_DATE"].clone()))
            .or_insert(0) += 1;
    }
    counts
}

/// Lines per file name over every upload Revenue received: each file at most once.
fn received_once(sim: &Sim) -> usize {
    let mut names: HashMap<String, usize> = HashMap::new();
    let mut lines = 0;
    for upload in uploads(sim) {
        *names.entry(upload.file_name.clone()).or_insert(0) += 1;
        lines += upload.lines;
    }
    let twice: Vec<_> = names.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "uploaded more than once: {twice:?}");
    lines
}

#[test]
fn file_mode_writes_template_files_once_and_only_new_rows_after() {
    let project = file_project("    max_lines: 3\n");
    export(&project, "2026-11-18", 0..5);
    let first = project.dinmo(&["run"]);
    exits(&first, 0);
    let files = files_in(&project.path().join("out/usage.revenue"));
    assert_eq!(files.len(), 2, "5 rows at 3 lines a file: {files:?}");
    let name = files[0].file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        name.starts_with("usage.revenue-") && name.ends_with("-0001.csv"),
        "{name}"
    );
    let text = std::fs::read_to_string(&files[0]).unwrap();
    let mut lines = text.lines();
    assert_eq!(
        lines.next(),
        Some("SO Line ID,Usage Amount,Unit Price,Quantity,DD_Rev_Segments,Sub Product,TRX_DATE")
    );
    assert_eq!(lines.next(), Some("SO-A0000,0.5,0.5,1,SEG-1,Storage,18-NOV-2026"));

    let second = project.dinmo(&["run"]);
    exits(&second, 0);
    assert_eq!(
        files_in(&project.path().join("out/usage.revenue")).len(),
        2,
        "nothing new"
    );

    export(&project, "2026-11-19", 3..6);
    let third = project.dinmo(&["run"]);
    exits(&third, 0);
    let files = files_in(&project.path().join("out/usage.revenue"));
    assert_eq!(files.len(), 3);
    let newest = std::fs::read_to_string(
        files
            .iter()
            .max_by_key(|f| f.metadata().unwrap().modified().unwrap())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(newest.lines().count(), 1 + 3, "only the new day's 3 rows: {newest}");
    assert!(newest.lines().skip(1).all(|l| l.ends_with("19-NOV-2026")), "{newest}");
}

#[test]
fn field_rules_refuse_rows_before_anything_is_written() {
    let project = file_project("    amount_tolerance: 0.001\n    date_format: MM/DD/YYYY\n");
    project.write(
        "models/usage.yml",
        &MODEL.edit(
            "qty * 0.5 AS amount",
            "CASE WHEN qty = 2 THEN 99.0 ELSE qty * 0.5 END AS amount",
        ),
    );
    export(&project, "2026-11-18", 0..4);
    let output = project.dinmo(&["run"]);
    assert_eq!(code(&output), 3, "a refused row: {}", describe(&output));
    let rows: Vec<String> = files_in(&project.path().join("out/usage.revenue"))
        .iter()
        .flat_map(|f| {
            std::fs::read_to_string(f)
                .unwrap()
                .lines()
                .skip(1)
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(rows.len(), 3, "{rows:?}");
    assert!(
        rows.iter().all(|r| r.ends_with("11/18/2026") && !r.contains("99")),
        "{rows:?}"
    );
    assert!(
        stdout(&output).contains("inconsistent") || stderr(&output).contains("inconsistent"),
        "{}",
        describe(&output)
    );
}

#[test]
fn api_mode_uploads_each_file_once_two_at_a_time() {
    let sim = Sim::start(SimConfig::default());
    sim.sim.revenue.configure(RevenueConfig {
        upload_delay_ms: 300,
        polls_before_status: 2,
        ..RevenueConfig::default()
    });
    let project = api_project(&sim, "");
    export(&project, "2026-11-18", 0..14);
    let first = run(&project, &["run"], &[]);
    exits(&first, 0);
    let staged = staged_counts(&sim);
    assert_eq!(staged.len(), 14);
    assert!(staged.values().all(|n| *n == 1), "{staged:?}");
    assert_eq!(received_once(&sim), 14);
    let counters = sim.sim.revenue.counters();
    assert_eq!(counters.uploads, 5, "14 rows at 3 lines a file");
    assert_eq!(counters.max_parallel_uploads, 2, "two uploads overlap, never three");
    assert_eq!(counters.refused_for_concurrency, 0);
    assert_eq!(counters.authentications, 1, "one token for the run");

    let second = run(&project, &["run"], &[]);
    exits(&second, 0);
    assert_eq!(sim.sim.revenue.counters().uploads, 5, "the second run sends nothing");

    export(&project, "2026-11-19", 10..12);
    let third = run(&project, &["run"], &[]);
    exits(&third, 0);
    assert_eq!(staged_counts(&sim).len(), 16);
    assert_eq!(received_once(&sim), 16);
}

#[test]
fn oauth_tokens_and_expired_tokens_are_renewed() {
    let sim = Sim::start(SimConfig::default());
    sim.sim.revenue.configure(RevenueConfig {
        token_ttl_secs: 1,
        polls_before_status: 2,
        // The staging outlasts the 1 s token whatever dinmo's jittered backoff draws (six
        // polls alone summed under 0.83 s in about one run in fifty).
        staged_after_ms: 2_500,
        ..RevenueConfig::default()
    });
    let defaults = RevenueConfig::default();
    let oauth = format!(
        "name: e2e\nsources:\n  events:\n    location: data/events/\ndestinations:\n  revenue:\n    type: zuora_revenue\n    mode: api\n    auth: oauth\n    base_url: {url}\n    oauth_url: {url}/oauth2/token\n    client_id: {}\n    client_secret: ${{REVPRO_SECRET}}\n",
        defaults.client_id,
        url = sim.sim.url()
    );
    let project = TestProject::new(&oauth, &[("usage.yml", MODEL)]);
    export(&project, "2026-11-18", 0..3);
    let output = run(&project, &["run"], &[("REVPRO_SECRET", &defaults.client_secret)]);
    exits(&output, 0);
    assert_eq!(staged_counts(&sim).len(), 3);
    let counters = sim.sim.revenue.counters();
    assert!(
        counters.authentications >= 2,
        "a 1 s token is renewed while polling: {counters:?}"
    );
    assert!(
        !describe(&output).contains(&defaults.client_secret),
        "the secret never shows"
    );
}

#[test]
fn a_token_refused_mid_run_is_renewed_once_and_the_run_goes_on() {
    let sim = Sim::start(SimConfig::default());
    let project = api_project(&sim, "");
    export(&project, "2026-11-18", 0..3);
    // Revenue forgets the token while the upload is read: the status call gets a 401, dinmo
    // authenticates again and asks again.
    set_faults(
        &sim,
        RevenueFaults {
            expire_tokens_after_upload: 1,
            ..RevenueFaults::default()
        },
    );
    let output = run(&project, &["run"], &[]);
    exits(&output, 0);
    let counters = sim.sim.revenue.counters();
    assert!(
        counters.unauthorized >= 1 && counters.authentications >= 2,
        "{counters:?}"
    );
    assert_eq!(counters.uploads, 1, "the upload itself is not repeated");
    assert_eq!(staged_counts(&sim).len(), 3);
}

#[test]
fn a_failed_batch_is_rejected_whole_and_sent_again_next_run() {
    let sim = Sim::start(SimConfig::default());
    let project = api_project(&sim, "");
    export(&project, "2026-11-18", 0..6);
    set_faults(
        &sim,
        RevenueFaults {
            fail_batches: 1,
            ..RevenueFaults::default()
        },
    );
    let first = run(&project, &["run"], &[]);
    assert_eq!(code(&first), 3, "rows refused by Revenue: {}", describe(&first));
    assert!(
        describe(&first).contains("revenue_upload_failed"),
        "{}",
        describe(&first)
    );
    assert_eq!(staged_counts(&sim).len(), 3, "the other file staged");
    let second = run(&project, &["run"], &[]);
    exits(&second, 0);
    let staged = staged_counts(&sim);
    assert_eq!(staged.len(), 6);
    assert!(staged.values().all(|n| *n == 1), "{staged:?}");
}

/// An upload whose answer was lost (or a 5xx to it) is never sent again by dinmo: the run
/// stops naming the file and the command; the person's answer settles it.
fn undecided_then_resolved(faults: RevenueFaults, listed: bool) {
    let sim = Sim::start(SimConfig::default());
    let project = api_project(&sim, "");
    export(&project, "2026-11-18", 0..6);
    set_faults(&sim, faults);
    let first = run(&project, &["run"], &[]);
    let message = exits_with(&first, 1, &[]);
    assert!(message.contains("Uploaded Files"), "{message}");
    let (_, file) = undecided_upload(&message);
    assert_eq!(
        uploads(&sim).iter().any(|u| u.file_name == file),
        listed,
        "what Revenue's Uploaded Files list shows"
    );
    let again = run(&project, &["run"], &[]);
    assert_eq!(
        code(&again),
        1,
        "still undecided, nothing uploaded again: {}",
        describe(&again)
    );
    assert_eq!(undecided_upload(&stderr(&again)).1, file);
    assert!(settle_like_a_person(&project, &sim, &again));
    let last = run(&project, &["run"], &[]);
    exits(&last, 0);
    assert_eq!(received_once(&sim), 6, "every row received exactly once");
    let plan = run(&project, &["plan", "--detailed-exitcode"], &[]);
    assert_eq!(code(&plan), 0, "nothing left: {}", describe(&plan));
}

#[test]
fn a_dropped_answer_after_receipt_stops_and_is_resolved_as_sent() {
    undecided_then_resolved(
        RevenueFaults {
            drop_after_receipt: 1,
            ..RevenueFaults::default()
        },
        true,
    );
}

#[test]
fn a_5xx_to_an_upload_stops_and_is_resolved_as_not_sent() {
    undecided_then_resolved(
        RevenueFaults {
            upload_unavailable: 1,
            ..RevenueFaults::default()
        },
        false,
    );
}

/// What a person does with an undecided upload: looks for the file the error names in
/// Revenue's Uploaded Files list and answers with `resolve-pending --file`. Returns whether
/// the run stopped undecided.
fn settle_like_a_person(project: &TestProject, sim: &Sim, output: &std::process::Output) -> bool {
    if code(output) != 1 {
        return false;
    }
    let message = stderr(output);
    let (run_id, file) = undecided_upload(&message);
    let listed = uploads(sim).iter().any(|u| u.file_name == file);
    let answer = if listed { "--sent" } else { "--not-sent" };
    let resolved = run(
        project,
        &[
            "state",
            "resolve-pending",
            "usage.revenue",
            &run_id,
            "--file",
            &file,
            answer,
        ],
        &[],
    );
    exits(&resolved, 0);
    assert!(stdout(&resolved).contains(&file), "{}", describe(&resolved));
    true
}

/// The run and file an undecided-upload error names.
fn undecided_upload(message: &str) -> (String, String) {
    let command = message
        .split("dinmo state resolve-pending usage.revenue ")
        .nth(1)
        .unwrap_or_else(|| panic!("names the command: {message}"));
    let words: Vec<&str> = command.split_whitespace().collect();
    assert_eq!(words[1], "--file", "{message}");
    (words[0].to_string(), words[2].to_string())
}

/// Crash at `point`; settle as a person would; each row received exactly once.
#[cfg(feature = "failpoints")]
fn crash_then_settle(point: &str, undecided_first: bool) {
    let sim = Sim::start(SimConfig::default());
    let project = api_project(&sim, "");
    export(&project, "2026-11-18", 0..7);
    let crashed = run(&project, &["run"], &[("DINMO_CRASH_AT", point)]);
    assert!(
        stderr(&crashed).contains("crash point"),
        "{point}: {}",
        describe(&crashed)
    );
    let mut next = run(&project, &["run"], &[]);
    if undecided_first {
        assert_eq!(
            code(&next),
            1,
            "{point}: the unanswered upload is not sent again: {}",
            describe(&next)
        );
    }
    // The other upload in flight at the crash may be undecided too: one answer per file.
    for _ in 0..3 {
        if !settle_like_a_person(&project, &sim, &next) {
            break;
        }
        next = run(&project, &["run"], &[]);
    }
    assert_eq!(code(&next), 0, "{point}: {}", describe(&next));
    assert_eq!(received_once(&sim), 7, "{point}: every row received exactly once");
    let plan = run(&project, &["plan", "--detailed-exitcode"], &[]);
    assert_eq!(code(&plan), 0, "{point}: nothing left: {}", describe(&plan));
    assert!(
        project.state_files("usage.revenue", "pending").is_empty(),
        "{point}: pending settled"
    );
}

#[cfg(feature = "failpoints")]
#[test]
fn crashes_at_every_point_upload_each_row_once() {
    // Before the upload: the intent is recorded, Revenue never saw it.
    crash_then_settle("revenue_intent_recorded", true);
    // Revenue received it, the answer was never recorded.
    crash_then_settle("revenue_upload_answered", true);
    // The request id is recorded: the status endpoint settles it.
    crash_then_settle("revenue_request_recorded", false);
    // Staged and recorded, not yet committed: the journal settles it.
    crash_then_settle("revenue_outcome_recorded", false);
    // The engine's own points around the writer.
    for point in [
        "intent_recorded",
        "before_batch_sent",
        "batch_answered",
        "all_committed",
    ] {
        crash_then_settle(point, false);
    }
}

#[test]
fn a_model_sent_to_billing_and_revenue_is_refused_unless_allowed() {
    let project_file = "name: e2e\nsources:\n  events:\n    location: data/events/\ndestinations:\n  files:\n    type: zuora_file\n    path: out/billing\n  revenue:\n    type: zuora_revenue\n    path: out/revenue\n";
    let both = format!(
        "{MODEL}  - destination: files\n    mapping:\n      AccountNumber: so_line\n      UnitOfMeasure: sub_product\n      StartDateTime: trx_date\n      Quantity: qty\n"
    );
    let project = TestProject::new(project_file, &[("usage.yml", &both)]);
    export(&project, "2026-11-18", 0..2);
    let refused = project.dinmo(&["validate"]);
    let message = exits_with(&refused, 1, &[]);
    assert!(
        message.contains("models/usage.yml")
            && message.contains("Billing–Revenue")
            && message.contains("allow_billing_and_revenue: true"),
        "{message}"
    );
    let allowed = both.edit(
        "  - destination: revenue\n",
        "  - destination: revenue\n    allow_billing_and_revenue: true\n",
    );
    project.write("models/usage.yml", &allowed);
    let ok = project.dinmo(&["validate"]);
    exits(&ok, 0);
}

#[test]
fn plan_markdown_summarises_revenue_rows() {
    let project = file_project("");
    export(&project, "2026-11-18", 0..4);
    export(&project, "2026-11-20", 4..6);
    let plan = project.dinmo(&["plan", "--format", "markdown"]);
    exits(&plan, 0);
    let text = stdout(&plan);
    // qty 1..=6 × 0.5: API (even qty 2, 4, 6) = 6, Storage (1, 3, 5) = 4.5, total 10.5.
    for needle in [
        "**Usage Amount by Sub Product**",
        "| API | 3 | 6 |",
        "| Storage | 3 | 4.5 |",
        "- total Usage Amount: 10.5",
        "- TRX_DATE: 2026-11-18",
        "→ 2026-11-20",
    ] {
        assert!(text.contains(needle), "`{needle}` in:\n{text}");
    }
}

#[test]
fn validate_connect_checks_the_mapping_against_the_tenants_template() {
    let sim = Sim::start(SimConfig::default());
    let project = api_project(&sim, "");
    export(&project, "2026-11-18", 0..2);
    let ok = run(&project, &["validate", "--connect"], &[]);
    exits(&ok, 0);
    assert!(describe(&ok).contains("RevPro Usage Upload"), "{}", describe(&ok));

    let extra = MODEL.edit(
        "      TRX_DATE: trx_date\n",
        "      TRX_DATE: trx_date\n      Region: segments\n",
    );
    project.write("models/usage.yml", &extra);
    let unknown = run(&project, &["validate", "--connect"], &[]);
    exits(&unknown, 1);
    assert!(
        describe(&unknown).contains("`Region` is not a column of template"),
        "{}",
        describe(&unknown)
    );

    project.write("models/usage.yml", MODEL);
    let dated = api_project(&sim, "    date_format: YYYY-MM-DD\n");
    export(&dated, "2026-11-18", 0..2);
    let mismatch = run(&dated, &["validate", "--connect"], &[]);
    exits(&mismatch, 1);
    assert!(
        describe(&mismatch).contains("expects `DD-MON-YYYY`"),
        "{}",
        describe(&mismatch)
    );
}

/// A tenant whose template types `Customer Name` as a number: Revenue rejects the rows whose
/// value is not one (a partial asynchronous upload). Those are recorded as rejected with
/// Revenue's `error_message` and offered again next run; every other row is committed, once.
fn partial_tenant(sim: &Sim) {
    let mut config = RevenueConfig::default();
    let template = config.templates.get_mut("RevPro Usage Upload").unwrap();
    for column in &mut template.columns {
        if column.label == "Customer Name" {
            column.data_type = "NUMBER".into();
        }
    }
    sim.sim.revenue.configure(config);
}

/// [`MODEL`] with `Customer Name` mapped: `n/a` on every third quantity.
fn partial_model() -> String {
    MODEL
        .replace(
            "         CAST(day AS DATE) AS trx_date\n",
            "         CAST(day AS DATE) AS trx_date,\n         CASE WHEN qty % 3 = 0 THEN 'n/a' ELSE CAST(qty AS VARCHAR) END AS customer\n",
        )
        .replace("'SEG-1' AS segments, CASE WHEN qty % 2 = 0 THEN 'API' ELSE 'Storage' END AS sub_product", "'SEG-1' AS segments, 'API' AS sub_product")
        + "      Customer Name: customer\n"
}

/// `reject_code: reject_message` of every rejected row of `sync`.
fn rejected_rows(project: &TestProject, sync: &str) -> Vec<String> {
    project
        .state_rows(sync, "rejected", &["reject_code", "reject_message"])
        .into_iter()
        .map(|row| format!("{}: {}", row[0], row[1]))
        .collect()
}

fn partial_project(sim: &Sim, extra: &str) -> TestProject {
    let project = api_project(sim, extra);
    project.write("models/usage.yml", &partial_model());
    project
}

/// Revenue settles an asynchronous upload with counts that do not add up to the file: the
/// run stops and waits for a person ([`undecided_until_answered`]).
#[test]
fn an_async_upload_whose_counts_do_not_add_up_waits_for_a_person_to_answer() {
    let sim = Sim::start(SimConfig::default());
    let project = one_file(api_project(&sim, ""));
    let faults = RevenueFaults {
        miscount_async: 1,
        ..RevenueFaults::default()
    };
    let expected = "Revenue counts 5 row(s) taken and 0 failed, but the file holds 6";
    undecided_until_answered(&sim, &project, faults, expected, 6);
}

/// Revenue lists the rows it rejected with values other than the file's, so which lines they
/// are cannot be told: the run stops and waits for a person ([`undecided_until_answered`]).
#[test]
fn rejected_rows_that_match_no_line_wait_for_a_person_to_answer() {
    let sim = Sim::start(SimConfig::default());
    partial_tenant(&sim);
    let project = one_file(partial_project(&sim, ""));
    let faults = RevenueFaults {
        reword_rejected: 1,
        ..RevenueFaults::default()
    };
    undecided_until_answered(&sim, &project, faults, "matches no line of the file", 4);
}

/// Six rows exported and sent in one upload under `faults`: the run stops with `expected` in
/// its message, naming the file, and commits none of its rows; the next run neither uploads
/// the file again nor asks about it; the person's answer (Revenue lists it: sent) settles it,
/// Revenue having staged `staged_rows` rows once each, and a further run sends nothing.
fn undecided_until_answered(
    sim: &Sim,
    project: &TestProject,
    faults: RevenueFaults,
    expected: &str,
    staged_rows: usize,
) {
    export(project, "2026-11-18", 0..6);
    set_faults(sim, faults);
    let first = run(project, &["run"], &[]);
    assert_eq!(code(&first), 1, "{}", describe(&first));
    let message = stderr(&first);
    assert!(
        message.contains(expected) && message.contains("which of its rows it took cannot be told"),
        "{message}"
    );
    assert!(rejected_rows(project, "usage.revenue").is_empty());
    assert!(
        project.state_files("usage.revenue", "snapshot").is_empty(),
        "nothing committed"
    );

    let status_calls = sim.sim.revenue.counters().status_calls;
    let again = run(project, &["run"], &[]);
    assert_eq!(code(&again), 1, "{}", describe(&again));
    assert!(stderr(&again).contains("recorded at"), "{}", describe(&again));
    assert_eq!(uploads(sim).len(), 1, "not uploaded again");
    assert_eq!(
        sim.sim.revenue.counters().status_calls,
        status_calls,
        "not asked about again"
    );

    assert!(settle_like_a_person(project, sim, &again));
    let settled = run(project, &["run"], &[]);
    exits(&settled, 0);
    assert_eq!(received_once(sim), 6);
    let staged = staged_counts(sim);
    assert_eq!(staged.len(), staged_rows, "{staged:?}");
    assert!(staged.values().all(|n| *n == 1), "{staged:?}");
    let after = run(project, &["run"], &[]);
    exits(&after, 0);
    assert_eq!(uploads(sim).len(), 1, "the settled rows count as sent");
}

#[test]
fn an_async_upload_commits_its_valid_rows_and_rejects_the_others_with_revenues_reason() {
    let sim = Sim::start(SimConfig::default());
    partial_tenant(&sim);
    let project = partial_project(&sim, "");
    export(&project, "2026-11-18", 0..6);
    let first = run(&project, &["run"], &[]);
    assert_eq!(code(&first), 3, "rows refused by Revenue: {}", describe(&first));
    // qty 3 and 6 carry `n/a`: rejected; the four others staged once.
    assert_eq!(staged_counts(&sim).len(), 4, "{:?}", staged_counts(&sim));
    assert!(uploads(&sim).iter().all(|u| u.asynchronous), "async uploads");
    let rejected = rejected_rows(&project, "usage.revenue");
    assert_eq!(rejected.len(), 2, "{rejected:?}");
    assert!(
        rejected
            .iter()
            .all(|r| r.contains("revenue_row_rejected") && r.contains("Customer Name `n/a` is not a number")),
        "{rejected:?}"
    );
    // Offered again next run (and refused again by this tenant); the staged rows are not resent.
    let second = run(&project, &["run"], &[]);
    assert_eq!(code(&second), 3, "{}", describe(&second));
    assert!(stdout(&second).contains("new rows: 2"), "{}", describe(&second));
    assert!(
        staged_counts(&sim).values().all(|n| *n == 1),
        "{:?}",
        staged_counts(&sim)
    );
    assert_eq!(staged_counts(&sim).len(), 4);

    // The synchronous upload, for tenants and templates without it, stays all or nothing.
    let sim = Sim::start(SimConfig::default());
    partial_tenant(&sim);
    let project = partial_project(&sim, "    upload: sync\n");
    export(&project, "2026-11-18", 0..6);
    let first = run(&project, &["run"], &[]);
    assert_eq!(code(&first), 3, "{}", describe(&first));
    assert!(uploads(&sim).iter().all(|u| !u.asynchronous));
    assert!(
        describe(&first).contains("revenue_upload_failed"),
        "{}",
        describe(&first)
    );
    assert!(
        staged_counts(&sim).is_empty(),
        "each file held a bad row: nothing staged"
    );
}

/// A run killed after Revenue received an asynchronous upload and before its status was
/// read: the next run follows the recorded upload, commits its valid rows and rejects the
/// others, and uploads nothing twice.
#[cfg(feature = "failpoints")]
#[test]
fn a_crash_between_an_async_upload_and_its_status_resumes_without_uploading_again() {
    let sim = Sim::start(SimConfig::default());
    partial_tenant(&sim);
    // One file, so that no other upload is in flight (undecided) at the crash.
    let project = one_file(partial_project(&sim, ""));
    export(&project, "2026-11-18", 0..6);
    let crashed = run(&project, &["run"], &[("DINMO_CRASH_AT", "revenue_request_recorded")]);
    assert!(stderr(&crashed).contains("crash point"), "{}", describe(&crashed));
    let resumed = run(&project, &["run"], &[]);
    assert_eq!(code(&resumed), 3, "{}", describe(&resumed));
    received_once(&sim);
    assert_eq!(staged_counts(&sim).len(), 4, "{:?}", staged_counts(&sim));
    assert!(staged_counts(&sim).values().all(|n| *n == 1));
    // The stopped run's two refused rows, settled first; then the resumed run offers them
    // again (in a file of its own) and Revenue refuses them again.
    let rejected = rejected_rows(&project, "usage.revenue");
    assert_eq!(rejected.len(), 4, "{rejected:?}");
    assert!(rejected.iter().all(|r| r.contains("is not a number")), "{rejected:?}");
}

/// Revenue cannot be read back: `reconcile` says so, counts what it delivered as unverified,
/// and still finds what the warehouse says against what was sent.
#[test]
fn reconcile_says_plainly_that_revenue_cannot_be_read_back() {
    let sim = Sim::start(SimConfig::default());
    let project = one_file(api_project(&sim, ""));
    export(&project, "2026-01-05", 0..4);
    exits(&run(&project, &["run"], &[]), 0);
    assert_eq!(received_once(&sim), 4);

    let output = run(&project, &["reconcile"], &[]);
    exits(&output, 0);
    let text = stdout(&output);
    assert!(
        text.contains("not read back: Zuora Revenue's API documents no read") && text.contains("unverified 4"),
        "{text}"
    );

    // A restatement changes one line, drops one, adds one: found against the snapshot,
    // Revenue untouched.
    project.export_day(
        "2026-01-05",
        &[("A0000", 1), ("A0001", 50), ("A0002", 3), ("A0009", 10)],
    );
    let output = run(&project, &["reconcile", "--format", "json"], &[]);
    exits(&output, 4);
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let rows = |class: &str| {
        report["syncs"][0]["classes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["class"] == class)
            .unwrap()["rows"]
            .clone()
    };
    assert_eq!(
        [
            rows("unverified"),
            rows("changed"),
            rows("gone"),
            rows("new"),
            rows("missing")
        ],
        [2, 1, 1, 1, 0].map(serde_json::Value::from),
        "{report:#}"
    );
    assert_eq!(report["syncs"][0]["held"]["source"], "unreadable", "{report:#}");
    assert_eq!(received_once(&sim), 4, "nothing sent");

    // A Billing usage export says nothing about Revenue: refused, not compared.
    project.write("usage.csv", "Account Number,Unit of Measure,Start Date,Quantity\n");
    let refused = run(&project, &["reconcile", "--zuora-export", "usage.csv"], &[]);
    exits(&refused, 1);
    assert!(
        stderr(&refused).contains("sends to Zuora Revenue"),
        "{}",
        describe(&refused)
    );
}
