//! The supervisor runs for weeks, and most of the `jarvis` binary it mapped
//! (the code of every command, touched in pages of 64 KiB by the kernel's
//! fault-around while it started) is never run again. Once the first look is
//! taken it asks the kernel to page out its read-only mappings of the
//! executable, and to read back only the pages used from then on: they are
//! clean pages of the file, read back on the next use, so nothing is lost,
//! and its resident memory becomes what it runs.

/// Pages out the executable's read-only mappings; what happened, for `-v`.
#[cfg(target_os = "linux")]
pub fn release_startup_pages() -> Result<usize, String> {
    let exe = std::env::current_exe().map_err(|err| err.to_string())?;
    let maps = std::fs::read_to_string("/proc/self/maps").map_err(|err| err.to_string())?;
    let mut released = 0;
    for line in maps.lines() {
        let mut fields = line.split_whitespace();
        let (Some(range), Some(perms)) = (fields.next(), fields.next()) else {
            continue;
        };
        let path = fields.nth(3).unwrap_or_default();
        if perms.contains('w') || std::path::Path::new(path) != exe {
            continue;
        }
        let Some((start, end)) = range.split_once('-') else {
            continue;
        };
        let (Ok(start), Ok(end)) = (
            usize::from_str_radix(start, 16),
            usize::from_str_radix(end, 16),
        ) else {
            continue;
        };
        let region = start as *mut libc::c_void;
        // SAFETY: a range of this process's own mapping of its executable,
        // read-only: paging it out drops clean pages the kernel reads back
        // from the file on the next access, and MADV_RANDOM only changes how
        // many it reads back at once (the used page alone: Linux 6.4 and
        // later skip fault-around for such a mapping); no memory changes
        // meaning.
        let done = unsafe {
            libc::madvise(region, end - start, libc::MADV_RANDOM);
            libc::madvise(region, end - start, libc::MADV_PAGEOUT)
        };
        if done == 0 {
            released += end - start;
        }
    }
    Ok(released)
}

#[cfg(not(target_os = "linux"))]
pub fn release_startup_pages() -> Result<usize, String> {
    Ok(0)
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn the_executables_code_is_paged_out_and_still_runs() {
        let released = release_startup_pages().unwrap();
        assert!(released > 0, "no read-only mapping of the test binary");
        // Code paged out is read back: this call still runs.
        assert_eq!(format!("{}", 1 + 1), "2");
    }
}
