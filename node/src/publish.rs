//! Turning a set of publication files into signed records: collect the files, validate them all,
//! resolve their links (id prefixes against the store, file links within the call), order them
//! so that every file link points at a record signed before it, then sign.
//!
//! Validation is all-or-nothing: `plan` either returns a plan for every file or every violation
//! of every file, and nothing has been signed or stored. Attached files are read once while
//! planning (size, hash, type from content) and copied into the blob store, checked again
//! against that hash, before any record that names them is stored (`Plan::store_files`).

use crate::blobs::{self, BlobError, Blobs, Examined};
use crate::store::{ResolveError, Store};
use cailloux_protocol::{
    Attachment, BlobHash, Draft, DraftLink, Link, LinkRel, LinkTarget, Publication, Record,
    RecordId, SignError, SigningKey, Violation, parse_partial,
};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// What is wrong with one file.
#[derive(Debug)]
pub struct FileViolations {
    pub file: PathBuf,
    pub violations: Vec<Violation>,
}

/// Files that cannot be found or read, before any validation.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CollectError {
    #[error("{path}: no such file or folder")]
    Missing { path: PathBuf },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: no .md publication in this folder")]
    EmptyFolder { path: PathBuf },
}

/// The `.md` files named by `paths`: files as given, folders searched recursively, each file
/// once, in a stable order (the order given, folders sorted by path).
pub fn collect_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, CollectError> {
    let mut out: Vec<PathBuf> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for path in paths {
        let meta = std::fs::metadata(path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => CollectError::Missing { path: path.clone() },
            _ => CollectError::Io {
                path: path.clone(),
                source: e,
            },
        })?;
        let mut found = Vec::new();
        if meta.is_dir() {
            walk(path, &mut found)?;
            if found.is_empty() {
                return Err(CollectError::EmptyFolder { path: path.clone() });
            }
            found.sort();
        } else {
            found.push(path.clone());
        }
        for f in found {
            let canonical = f.canonicalize().map_err(|e| CollectError::Io {
                path: f.clone(),
                source: e,
            })?;
            if seen.insert(canonical) {
                out.push(f);
            }
        }
    }
    Ok(out)
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), CollectError> {
    let entries = std::fs::read_dir(dir).map_err(|e| CollectError::Io {
        path: dir.to_owned(),
        source: e,
    })?;
    for entry in entries {
        let entry = entry.map_err(|e| CollectError::Io {
            path: dir.to_owned(),
            source: e,
        })?;
        let path = entry.path();
        let is_dir = entry
            .file_type()
            .map_err(|e| CollectError::Io {
                path: path.clone(),
                source: e,
            })?
            .is_dir();
        if is_dir {
            walk(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "md") {
            out.push(path);
        }
    }
    Ok(())
}

/// (link index, index of the file it points at).
type FileLinks = Vec<(usize, usize)>;

/// Validated publications in dependency order, ready to sign.
#[derive(Debug)]
pub struct Plan {
    items: Vec<PlanItem>,
}

/// A file to attach, as read while planning.
#[derive(Clone, Debug)]
struct PlannedFile {
    path: PathBuf,
    name: String,
    examined: Examined,
}

#[derive(Debug)]
struct PlanItem {
    file: PathBuf,
    publication: Publication,
    files: Vec<PlannedFile>,
    /// For each link resolved to another file of the call: (link index, item index).
    file_links: Vec<(usize, usize)>,
}

/// Validates every file and resolves every link. `files` are (path, contents).
pub fn plan(
    files: Vec<(PathBuf, String)>,
    default_town: Option<&str>,
    store: Option<&Store>,
) -> Result<Plan, Vec<FileViolations>> {
    let canonical: Vec<Option<PathBuf>> =
        files.iter().map(|(p, _)| p.canonicalize().ok()).collect();
    let index_of: HashMap<&PathBuf, usize> = canonical
        .iter()
        .enumerate()
        .filter_map(|(i, c)| Some((c.as_ref()?, i)))
        .collect();
    let mut problems = Vec::new();
    // Per file: its draft, its file links as (link index, file index), its attachments.
    let mut drafts: Vec<Option<(Draft, FileLinks, Vec<PlannedFile>)>> = Vec::new();
    for (i, (file, text)) in files.iter().enumerate() {
        let (draft, mut violations) = parse_partial(text, default_town);
        let mut planned = Vec::new();
        let draft = draft.map(|mut draft| {
            let deps = resolve_links(&mut draft, file, &index_of, store, &mut violations);
            planned = read_attachments(&mut draft, file, &mut violations);
            if deps.iter().any(|(_, j)| *j == i) {
                violations.push(Violation::new(
                    "links",
                    "a publication cannot link to itself",
                ));
            }
            (draft, deps)
        });
        if !violations.is_empty() {
            problems.push(FileViolations {
                file: file.clone(),
                violations,
            });
        }
        drafts.push(draft.map(|(d, deps)| (d, deps, planned)));
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    let deps: Vec<Vec<usize>> = drafts
        .iter()
        .map(|d| {
            d.as_ref()
                .map(|(_, deps, _)| deps.iter().map(|(_, j)| *j).collect())
                .unwrap_or_default()
        })
        .collect();
    let order = match dependency_order(&deps) {
        Ok(order) => order,
        Err(cycle) => {
            let names: Vec<String> = cycle
                .iter()
                .map(|i| files[*i].0.display().to_string())
                .collect();
            let message = format!(
                "file links form a cycle: {} -> {}",
                names.join(" -> "),
                names[0]
            );
            return Err(cycle
                .iter()
                .map(|i| FileViolations {
                    file: files[*i].0.clone(),
                    violations: vec![Violation::new("links", message.clone())],
                })
                .collect());
        }
    };
    // Re-index the file links by position in the signing order.
    let position: HashMap<usize, usize> =
        order.iter().enumerate().map(|(pos, i)| (*i, pos)).collect();
    let items = order
        .iter()
        .filter_map(|i| {
            let (draft, deps, planned) = drafts[*i].take()?;
            Some(PlanItem {
                file: files[*i].0.clone(),
                publication: draft.publication,
                files: planned,
                file_links: deps.iter().map(|(link, j)| (*link, position[j])).collect(),
            })
        })
        .collect();
    Ok(Plan { items })
}

fn resolve_links(
    draft: &mut Draft,
    file: &Path,
    index_of: &HashMap<&PathBuf, usize>,
    store: Option<&Store>,
    violations: &mut Vec<Violation>,
) -> Vec<(usize, usize)> {
    let mut deps = Vec::new();
    for (n, DraftLink { field, target }) in draft.link_targets.iter().enumerate() {
        match target {
            LinkTarget::Id(prefix) => {
                // Without a store (a practitioner publishing to a node with `--node`), a link
                // names its target by its whole id; the node checks what it points at.
                let resolved = match (store, prefix.as_full()) {
                    (Some(store), _) => store.resolve(prefix),
                    (None, Some(id)) => Ok(id),
                    (None, None) => Err(ResolveError::NotFound(prefix.clone())),
                };
                match resolved {
                    Ok(id) => draft.publication.links[n].id = id,
                    Err(e) => violations.push(Violation::new(format!("{field}.id"), e.to_string())),
                }
            }
            LinkTarget::File(name) => {
                let path = file.parent().unwrap_or(Path::new(".")).join(name);
                match path.canonicalize().ok().and_then(|c| index_of.get(&c).copied()) {
                    Some(j) => deps.push((n, j)),
                    None if path.exists() => violations.push(Violation::new(
                        format!("{field}.file"),
                        format!("`{name}` is not among the files of this publish call; add it to the command"),
                    )),
                    None => violations.push(Violation::new(
                        format!("{field}.file"),
                        format!("`{name}` does not exist (looked for {})", path.display()),
                    )),
                }
            }
        }
    }
    deps
}

/// Reads the files a draft attaches (paths relative to the publication's folder, and inside
/// it), fills in `publication.attachments`, and reports each problem naming the file: missing,
/// outside the folder, too large, not the type its name claims; then the rules on them all
/// (count, total size).
fn read_attachments(
    draft: &mut Draft,
    file: &Path,
    violations: &mut Vec<Violation>,
) -> Vec<PlannedFile> {
    let folder = match file.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let folder = folder
        .canonicalize()
        .unwrap_or_else(|_| folder.to_path_buf());
    let mut planned = Vec::new();
    for a in &draft.attachment_files {
        let field = format!("{}.file", a.field);
        let path = folder.join(&a.file);
        let path = match path.canonicalize() {
            Ok(p) if p.starts_with(&folder) && p.is_file() => p,
            Ok(p) if p.starts_with(&folder) => {
                violations.push(Violation::new(field, format!("`{}` is not a file", a.file)));
                continue;
            }
            Ok(_) => {
                violations.push(Violation::new(
                    field,
                    format!(
                        "`{}` is outside the publication's folder ({}); put it next to the \
                         Markdown file or below it",
                        a.file,
                        folder.display()
                    ),
                ));
                continue;
            }
            Err(_) => {
                violations.push(Violation::new(
                    field,
                    format!(
                        "`{}` does not exist (looked for {})",
                        a.file,
                        path.display()
                    ),
                ));
                continue;
            }
        };
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if let Err(e) = cailloux_protocol::attachment::check_name(&name) {
            violations.push(Violation::new(field, e));
            continue;
        }
        match blobs::examine(&path, &name) {
            Ok(examined) => {
                draft.publication.attachments.push(Attachment {
                    name: name.clone(),
                    title: a.title.clone().unwrap_or_else(|| name.clone()),
                    media_type: examined.media_type,
                    size: examined.size,
                    hash: examined.hash,
                });
                planned.push(PlannedFile {
                    path,
                    name,
                    examined,
                });
            }
            Err(BlobError::Content(e)) => violations.push(Violation::new(field, e)),
            Err(e) => violations.push(Violation::new(field, e.to_string())),
        }
    }
    if !planned.is_empty() {
        violations.extend(
            draft
                .publication
                .violations()
                .into_iter()
                .filter(|v| v.field.starts_with("attachments")),
        );
    }
    planned
}

/// A topological order of the files (dependencies first, otherwise in the given order), or
/// the files of one cycle.
fn dependency_order(deps: &[Vec<usize>]) -> Result<Vec<usize>, Vec<usize>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Active,
        Done,
    }
    fn visit(
        i: usize,
        deps: &[Vec<usize>],
        marks: &mut [Mark],
        stack: &mut Vec<usize>,
        order: &mut Vec<usize>,
    ) -> Result<(), Vec<usize>> {
        match marks[i] {
            Mark::Done => return Ok(()),
            Mark::Active => {
                let start = stack.iter().position(|s| *s == i).unwrap_or(0);
                return Err(stack[start..].to_vec());
            }
            Mark::New => {}
        }
        marks[i] = Mark::Active;
        stack.push(i);
        for d in &deps[i] {
            visit(*d, deps, marks, stack, order)?;
        }
        stack.pop();
        marks[i] = Mark::Done;
        order.push(i);
        Ok(())
    }
    let mut marks = vec![Mark::New; deps.len()];
    let mut order = Vec::with_capacity(deps.len());
    for i in 0..deps.len() {
        visit(i, deps, &mut marks, &mut Vec::new(), &mut order)?;
    }
    Ok(order)
}

/// The files of a plan, to store before its records.
#[derive(Clone, Debug, Default)]
pub struct Files(Vec<PlannedFile>);

impl Files {
    /// Copies every file into `blobs` as the town's own, checking each against the hash read
    /// while planning: call it before storing the records, so a stored record's own files are
    /// always held. A file that changed since is an error naming it. Returns the files that
    /// were not held before (`Blobs::remove_new` if the records are refused).
    pub fn store(&self, blobs: &Blobs) -> Result<Vec<BlobHash>, BlobError> {
        let mut added = Vec::new();
        for f in &self.0 {
            if !blobs.has(&f.examined.hash) {
                added.push(f.examined.hash);
            }
            if let Err(e) = blobs.add_file(&f.path, &f.name, &f.examined, true) {
                blobs.remove_new(&added);
                return Err(e);
            }
        }
        Ok(added)
    }
}

impl Plan {
    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Whether any publication of the plan attaches files.
    pub fn has_files(&self) -> bool {
        self.items.iter().any(|i| !i.files.is_empty())
    }

    /// The files the plan's publications attach.
    pub fn files(&self) -> Files {
        Files(self.items.iter().flat_map(|i| i.files.clone()).collect())
    }

    /// Makes the plan's one publication a new version of `old` (`publish --supersedes`).
    pub fn supersede(&mut self, old: RecordId) -> Result<(), String> {
        let [item] = self.items.as_mut_slice() else {
            return Err(format!(
                "--supersedes names one record, so publish one file with it, not {}",
                self.items.len()
            ));
        };
        let links = &mut item.publication.links;
        if links.iter().any(|l| l.rel == LinkRel::Supersedes) {
            return Err(format!(
                "{}: the front matter already has a `supersedes` link; drop it or --supersedes",
                item.file.display()
            ));
        }
        links.push(Link {
            rel: LinkRel::Supersedes,
            id: old,
        });
        let violations = item.publication.violations();
        match violations.first() {
            Some(v) => Err(format!("{}: {v}", item.file.display())),
            None => Ok(()),
        }
    }

    /// Signs the publications in order. Creation times come from `clock` (ms since the Unix
    /// epoch) and strictly increase within the plan, so a listing shows them in file order.
    pub fn sign<'a>(
        self,
        key: &'a SigningKey,
        mut clock: impl FnMut() -> u64 + 'a,
    ) -> impl Iterator<Item = Result<(PathBuf, Record), SignError>> + 'a {
        let mut signed: Vec<RecordId> = Vec::with_capacity(self.items.len());
        let mut last = 0u64;
        self.items.into_iter().map(move |mut item| {
            for (link, pos) in &item.file_links {
                item.publication.links[*link].id = signed[*pos];
            }
            last = clock().max(last + 1);
            let record = Record::sign(key, last, item.publication)?;
            signed.push(record.id());
            Ok((item.file, record))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::dependency_order;

    #[test]
    fn orders_dependencies_first_and_finds_cycles() {
        assert_eq!(
            dependency_order(&[vec![1], vec![], vec![0, 1]]),
            Ok(vec![1, 0, 2])
        );
        assert_eq!(
            dependency_order(&[vec![1], vec![2], vec![0]]),
            Err(vec![0, 1, 2])
        );
    }
}
