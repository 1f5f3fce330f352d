//! An in-memory kernel for the unit tests: a staged and a current list, a TPM
//! whose PCR 10 follows every add (or lags one record whose extend is under
//! way), adders that add records while the lists are read, reader sets that keep a writer out while held (EBUSY), a hook
//! run just before a reader set is taken, and a kill switch at a chosen
//! [`Step`] of an export.

use std::cell::RefCell;

use anyhow::{bail, ensure, Result};

use crate::kernel::{Kernel, Lists, Reader, Step, Writer};
use crate::record::{Bank, Record};
use crate::replay::{Pcr10, Replay};
use crate::testdata::measurement;

#[derive(Default)]
struct State {
    /// Every record ever added, in order.
    every: Vec<Record>,
    lists: Lists,
    pcr: Replay,
    /// A record listed whose extend of PCR 10 is still under way.
    extending: Option<Record>,
    tpm: bool,
    /// Measurements added so far, to make each new one distinct.
    measured: u32,
    /// Added when a read of the lists starts (after the first PCR reading).
    on_next_read: Vec<Record>,
    /// Added between the sha1 and the sha256 value of the next PCR reading.
    between_banks: Vec<Record>,
    /// Measurements added after every read of the lists.
    adds_per_read: u32,
    /// Fail the `nth` time `step` is reached (1-based).
    crash: Option<(Step, usize)>,
    reached: Vec<Step>,
    /// Reader sets held: a writer is refused (EBUSY) while there is one.
    readers: usize,
}

impl State {
    fn add(&mut self, record: Record) {
        self.pcr.extend(&record);
        self.every.push(record.clone());
        self.lists.current.push(record);
    }

    fn add_measurements(&mut self, count: u32) {
        for _ in 0..count {
            self.measured += 1;
            self.add(measurement(self.measured));
        }
    }
}

/// The fake kernel; see the module docs.
pub(crate) struct FakeKernel {
    state: RefCell<State>,
    /// Runs once, just before the next reader set is taken.
    before_reader: RefCell<Option<Hook>>,
}

/// Something done to the fake kernel from inside one of its calls.
type Hook = Box<dyn FnOnce(&FakeKernel)>;

impl FakeKernel {
    /// An empty kernel, with or without a TPM.
    pub(crate) fn new(tpm: bool) -> FakeKernel {
        FakeKernel {
            state: RefCell::new(State {
                tpm,
                ..State::default()
            }),
            before_reader: RefCell::new(None),
        }
    }

    /// Adds `record` to the current list and extends PCR 10.
    pub(crate) fn add(&self, record: Record) {
        self.state.borrow_mut().add(record);
    }

    /// Lists `record` but leaves PCR 10 as it is until [`Self::extend_listed`]:
    /// the kernel lists a record just before it extends PCR 10 with it.
    pub(crate) fn list_before_extend(&self, record: Record) {
        let mut state = self.state.borrow_mut();
        state.every.push(record.clone());
        state.lists.current.push(record.clone());
        state.extending = Some(record);
    }

    /// Extends PCR 10 with the record [`Self::list_before_extend`] listed.
    pub(crate) fn extend_listed(&self) {
        let mut state = self.state.borrow_mut();
        let record = state
            .extending
            .take()
            .expect("a record listed before its extend");
        state.pcr.extend(&record);
    }

    /// Adds `count` new, distinct measurements.
    pub(crate) fn add_measurements(&self, count: u32) {
        self.state.borrow_mut().add_measurements(count);
    }

    /// Adds `records` when the next read of the lists starts.
    pub(crate) fn add_on_next_read(&self, records: Vec<Record>) {
        self.state.borrow_mut().on_next_read = records;
    }

    /// Adds `records` between the two banks of the next PCR 10 reading, as
    /// an extend between the TPM's two commands does.
    pub(crate) fn add_between_banks(&self, records: Vec<Record>) {
        self.state.borrow_mut().between_banks = records;
    }

    /// Adds `count` measurements after every read of the lists.
    pub(crate) fn add_after_each_read(&self, count: u32) {
        self.state.borrow_mut().adds_per_read = count;
    }

    /// Fails the `nth` time an export reaches `step`; `None` never fails.
    pub(crate) fn crash_at(&self, crash: Option<(Step, usize)>) {
        let mut state = self.state.borrow_mut();
        state.crash = crash;
        state.reached.clear();
    }

    /// Runs `hook` once, just before the next reader set is taken (e.g. an
    /// export by another keeper that gets in first).
    pub(crate) fn before_next_reader(&self, hook: impl FnOnce(&FakeKernel) + 'static) {
        *self.before_reader.borrow_mut() = Some(Box::new(hook));
    }

    /// Every record ever added.
    pub(crate) fn every(&self) -> Vec<Record> {
        self.state.borrow().every.clone()
    }

    /// The live records: staged, then current.
    pub(crate) fn live(&self) -> Vec<Record> {
        self.state.borrow().lists.live()
    }

    /// The lists as they are.
    pub(crate) fn lists(&self) -> Lists {
        self.state.borrow().lists.clone()
    }
}

impl Kernel for FakeKernel {
    fn pcr10(&self) -> Result<Option<Pcr10>> {
        let mut state = self.state.borrow_mut();
        if !state.tpm {
            return Ok(None);
        }
        let sha1 = state.pcr.value(Bank::Sha1).to_vec();
        for record in std::mem::take(&mut state.between_banks) {
            state.add(record);
        }
        Ok(Pcr10::new(
            Some(sha1),
            Some(state.pcr.value(Bank::Sha256).to_vec()),
        ))
    }

    fn reader(&self) -> Result<Box<dyn Reader + '_>> {
        let hook = self.before_reader.borrow_mut().take();
        if let Some(hook) = hook {
            hook(self);
        }
        self.state.borrow_mut().readers += 1;
        Ok(Box::new(FakeReader { kernel: self }))
    }

    fn writer(&self) -> Result<Box<dyn Writer + '_>> {
        ensure!(
            self.state.borrow().readers == 0,
            "EBUSY: a reader holds the lists"
        );
        Ok(Box::new(FakeWriter { kernel: self }))
    }
}

impl FakeKernel {
    /// Reads the lists (through a reader or the writer); adders may add.
    fn read_now(&self) -> Lists {
        let mut state = self.state.borrow_mut();
        for record in std::mem::take(&mut state.on_next_read) {
            state.add(record);
        }
        let lists = state.lists.clone();
        let adds = state.adds_per_read;
        state.add_measurements(adds);
        lists
    }
}

struct FakeReader<'a> {
    kernel: &'a FakeKernel,
}

impl Reader for FakeReader<'_> {
    fn read_lists(&mut self) -> Result<Lists> {
        Ok(self.kernel.read_now())
    }
}

impl Drop for FakeReader<'_> {
    fn drop(&mut self) {
        self.kernel.state.borrow_mut().readers -= 1;
    }
}

struct FakeWriter<'a> {
    kernel: &'a FakeKernel,
}

impl Writer for FakeWriter<'_> {
    fn read_lists(&mut self) -> Result<Lists> {
        Ok(self.kernel.read_now())
    }

    fn stage(&mut self) -> Result<bool> {
        let mut state = self.kernel.state.borrow_mut();
        ensure!(state.lists.staged.is_empty(), "A: EEXIST");
        if state.lists.current.is_empty() {
            return Ok(false);
        }
        state.lists.staged = std::mem::take(&mut state.lists.current);
        Ok(true)
    }

    fn delete_staged(&mut self) -> Result<()> {
        let mut state = self.kernel.state.borrow_mut();
        ensure!(!state.lists.staged.is_empty(), "D: ENOENT");
        state.lists.staged.clear();
        Ok(())
    }

    fn delete_head(&mut self, n: usize) -> Result<()> {
        let mut state = self.kernel.state.borrow_mut();
        ensure!(n <= state.lists.current.len(), "N: ENOENT");
        state.lists.current.drain(..n);
        Ok(())
    }

    fn reached(&mut self, step: Step) -> Result<()> {
        let mut state = self.kernel.state.borrow_mut();
        state.reached.push(step);
        let times = state.reached.iter().filter(|&&seen| seen == step).count();
        if state.crash == Some((step, times)) {
            bail!("injected crash {step}");
        }
        Ok(())
    }
}
