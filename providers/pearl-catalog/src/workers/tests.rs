use super::*;
use crate::DEFAULT_PEARL_MODEL;

const H100: &str = "NVIDIA H100 80GB HBM3";
const H200: &str = "NVIDIA H200";
const RTX_4090: &str = "NVIDIA GeForce RTX 4090";
const MODEL: &str = "test/model";

fn gpu(index: u32, name: &str, cc: &str, mib: u64) -> GpuCandidate {
    GpuCandidate {
        index,
        uuid: Some(format!("GPU-{index:04}-abcd")),
        name: name.into(),
        vendor: "nvidia".into(),
        compute_capability: Some(cc.into()),
        memory_total_mib: Some(mib),
    }
}

fn h100(index: u32) -> GpuCandidate {
    gpu(index, H100, "9.0", 81_559)
}

fn h200(index: u32) -> GpuCandidate {
    gpu(index, H200, "9.0", 143_771)
}

fn rtx_4090(index: u32) -> GpuCandidate {
    gpu(index, RTX_4090, "8.9", 24_564)
}

fn h100s(n: u32) -> Vec<GpuCandidate> {
    (0..n).map(h100).collect()
}

fn gb(gb: f64) -> u64 {
    gb_to_mib(gb)
}

fn auto(gpus: &[GpuCandidate], needs_mib: u64) -> Result<WorkerPlan, PlanError> {
    plan_workers_needing(gpus, MODEL, needs_mib, &WorkersSetting::Auto)
}

fn groups(
    gpus: &[GpuCandidate],
    needs_mib: u64,
    groups: &[&[&str]],
) -> Result<WorkerPlan, PlanError> {
    let groups = groups
        .iter()
        .map(|group| group.iter().map(|id| id.to_string()).collect())
        .collect();
    plan_workers_needing(gpus, MODEL, needs_mib, &WorkersSetting::Groups(groups))
}

fn gpu_sets(plan: &WorkerPlan) -> Vec<Vec<u32>> {
    plan.workers.iter().map(|w| w.gpus.clone()).collect()
}

fn reasons(plan: &WorkerPlan) -> Vec<String> {
    plan.left_out.iter().map(LeftOut::to_string).collect()
}

// ---- auto: the model fits one GPU ----

#[test]
fn one_h100_is_one_worker() {
    let plan = plan_workers(&h100s(1), DEFAULT_PEARL_MODEL, &WorkersSetting::Auto).unwrap();
    assert_eq!(
        plan.workers,
        [Worker {
            index: 0,
            gpus: vec![0],
            uuids: vec![Some("GPU-0000-abcd".into())],
            tensor_parallel_size: 1,
        }]
    );
    assert!(plan.left_out.is_empty());
    let worker = &plan.workers[0];
    assert_eq!(worker.docker_device_ids(), ["0"]);
    assert_eq!(worker.nvidia_visible_devices(), "0");
    assert_eq!(worker.cuda_visible_devices(), "0");
    assert!(worker.vllm_args().is_empty());
    assert_eq!(worker.port(8000), Ok(8000));
    assert_eq!(worker.to_string(), "worker 0: GPU 0");
}

#[test]
fn two_h100s_are_two_workers() {
    let plan = plan_workers(&h100s(2), DEFAULT_PEARL_MODEL, &WorkersSetting::Auto).unwrap();
    assert_eq!(gpu_sets(&plan), [[0], [1]]);
    assert_eq!(plan.workers[1].index, 1);
    assert_eq!(plan.workers[1].nvidia_visible_devices(), "1");
    // Inside its container the worker's one GPU is ordinal 0.
    assert_eq!(plan.workers[1].cuda_visible_devices(), "0");
    assert_eq!(plan.ports(8000), Ok(vec![8000, 8001]));
}

#[test]
fn eight_h100s_are_eight_workers() {
    let plan = plan_workers(&h100s(8), DEFAULT_PEARL_MODEL, &WorkersSetting::Auto).unwrap();
    assert_eq!(plan.workers.len(), 8);
    for (i, worker) in plan.workers.iter().enumerate() {
        assert_eq!(worker.index, i as u32);
        assert_eq!(worker.gpus, [i as u32]);
        assert_eq!(worker.tensor_parallel_size, 1);
    }
    assert_eq!(
        plan.ports(8000).unwrap(),
        (8000..8008).collect::<Vec<u16>>()
    );
    assert!(plan.left_out.is_empty());
}

#[test]
fn eight_h200s_are_eight_workers() {
    let gpus: Vec<_> = (0..8).map(h200).collect();
    let plan = plan_workers(&gpus, DEFAULT_PEARL_MODEL, &WorkersSetting::Auto).unwrap();
    assert_eq!(gpu_sets(&plan), (0..8).map(|i| vec![i]).collect::<Vec<_>>());
    // An H200 holds a 150 GB model alone: still one worker per GPU.
    let plan = auto(&gpus, gb(150.0)).unwrap();
    assert_eq!(plan.workers.len(), 8);
    assert!(plan.workers.iter().all(|w| w.tensor_parallel_size == 1));
}

#[test]
fn candidates_are_planned_in_index_order() {
    let plan = auto(&[h100(3), h100(1), h100(2)], gb(70.0)).unwrap();
    assert_eq!(gpu_sets(&plan), [[1], [2], [3]]);
    assert_eq!(
        plan.workers.iter().map(|w| w.index).collect::<Vec<_>>(),
        [0, 1, 2]
    );
}

#[test]
fn a_4090_among_h100s_is_left_out_with_its_reason() {
    let gpus = [h100(0), rtx_4090(1), h100(2), h100(3)];
    let plan = plan_workers(&gpus, DEFAULT_PEARL_MODEL, &WorkersSetting::Auto).unwrap();
    assert_eq!(gpu_sets(&plan), [[0], [2], [3]]);
    assert_eq!(
        plan.workers.iter().map(|w| w.index).collect::<Vec<_>>(),
        [0, 1, 2]
    );
    assert_eq!(
        reasons(&plan),
        [
            "GPU 1 (NVIDIA GeForce RTX 4090) is left out: compute capability 8.9, Pearl needs 9.0 or newer"
        ]
    );
    assert_eq!(
        plan.left_out[0].reason,
        LeftOutReason::ComputeCapability {
            found: Some("8.9".into())
        }
    );
    // Worker 1 runs on host GPU 2, which is ordinal 0 in its container.
    assert_eq!(plan.workers[1].nvidia_visible_devices(), "2");
    assert_eq!(plan.workers[1].cuda_visible_devices(), "0");
}

#[test]
fn compute_capability_is_compared_as_numbers() {
    let blackwell = gpu(0, "NVIDIA B200", "10.0", 183_359);
    let plan = auto(&[blackwell], gb(70.0)).unwrap();
    assert_eq!(gpu_sets(&plan), [[0]]);
    // "9" reads as 9.0; "12.0" is newer; "8.10" is older.
    assert!(auto(&[gpu(0, H100, "9", 81_559)], gb(70.0)).is_ok());
    assert!(auto(&[gpu(0, "NVIDIA RTX PRO 6000", "12.0", 97_887)], gb(70.0)).is_ok());
    assert!(matches!(
        auto(&[gpu(0, "x", "8.10", 81_559)], gb(70.0)),
        Err(PlanError::NoQualifyingGpu { .. })
    ));
}

#[test]
fn unknown_or_garbled_facts_leave_a_gpu_out() {
    let mut no_cc = h100(1);
    no_cc.compute_capability = None;
    let mut garbled = h100(2);
    garbled.compute_capability = Some("sm90".into());
    let mut no_memory = h100(3);
    no_memory.memory_total_mib = None;
    let mut amd = gpu(4, "AMD Instinct MI300X", "9.4", 196_592);
    amd.vendor = "amd".into();
    let plan = auto(&[h100(0), no_cc, garbled, no_memory, amd], gb(70.0)).unwrap();
    assert_eq!(gpu_sets(&plan), [[0]]);
    assert_eq!(
        reasons(&plan),
        [
            "GPU 1 (NVIDIA H100 80GB HBM3) is left out: compute capability unknown, Pearl needs 9.0 or newer",
            "GPU 2 (NVIDIA H100 80GB HBM3) is left out: compute capability \"sm90\" is not a version, Pearl needs 9.0 or newer",
            "GPU 3 (NVIDIA H100 80GB HBM3) is left out: its memory is unknown, so whether it holds the model cannot be judged",
            "GPU 4 (AMD Instinct MI300X) is left out: vendor amd, Pearl mines on NVIDIA GPUs with compute capability 9.0 or newer (H100/H200)",
        ]
    );
}

#[test]
fn no_qualifying_gpu_is_an_error_with_every_reason() {
    let err = auto(&[rtx_4090(0), rtx_4090(1)], gb(24.0)).unwrap_err();
    assert_eq!(
        err,
        PlanError::NoQualifyingGpu {
            left_out: vec![
                LeftOut {
                    gpu: 0,
                    name: RTX_4090.into(),
                    reason: LeftOutReason::ComputeCapability {
                        found: Some("8.9".into())
                    }
                },
                LeftOut {
                    gpu: 1,
                    name: RTX_4090.into(),
                    reason: LeftOutReason::ComputeCapability {
                        found: Some("8.9".into())
                    }
                },
            ]
        }
    );
    assert_eq!(
        err.to_string(),
        "no GPU can mine Pearl: GPU 0 (NVIDIA GeForce RTX 4090) is left out: compute capability 8.9, Pearl needs 9.0 or newer; GPU 1 (NVIDIA GeForce RTX 4090) is left out: compute capability 8.9, Pearl needs 9.0 or newer; Pearl mines on NVIDIA GPUs with compute capability 9.0 or newer (H100/H200)"
    );
}

#[test]
fn no_candidates_is_an_error() {
    let err = auto(&[], gb(70.0)).unwrap_err();
    assert_eq!(err, PlanError::NoGpu);
    assert!(err.to_string().contains("cuda_visible_devices"));
    assert_eq!(
        plan_workers_needing(&[], MODEL, 1, &WorkersSetting::Single),
        Err(PlanError::NoGpu)
    );
}

#[test]
fn a_gpu_too_small_alone_is_left_out_when_others_hold_the_model() {
    // Same name, less memory (e.g. a hand-written facts file).
    let small = gpu(1, H100, "9.0", 40_000);
    let plan = auto(&[h100(0), small, h100(2)], gb(70.0)).unwrap();
    assert_eq!(gpu_sets(&plan), [[0], [2]]);
    assert_eq!(
        reasons(&plan),
        ["GPU 1 (NVIDIA H100 80GB HBM3) is left out: 41.9 GB, the model needs 70.0 GB"]
    );
}

// ---- auto: the model needs several GPUs ----

#[test]
fn a_model_larger_than_one_h100_gets_pairs() {
    let plan = auto(&h100s(8), gb(150.0)).unwrap();
    assert_eq!(gpu_sets(&plan), [[0, 1], [2, 3], [4, 5], [6, 7]]);
    assert!(plan.left_out.is_empty());
    let worker = &plan.workers[1];
    assert_eq!(worker.index, 1);
    assert_eq!(worker.tensor_parallel_size, 2);
    assert_eq!(worker.docker_device_ids(), ["2", "3"]);
    assert_eq!(worker.nvidia_visible_devices(), "2,3");
    assert_eq!(worker.cuda_visible_devices(), "0,1");
    assert_eq!(worker.vllm_args(), ["--tensor-parallel-size", "2"]);
    assert_eq!(
        worker.uuids,
        [Some("GPU-0002-abcd".into()), Some("GPU-0003-abcd".into())]
    );
    assert_eq!(worker.to_string(), "worker 1: GPUs 2,3 (tensor parallel 2)");
    assert_eq!(plan.ports(8000), Ok(vec![8000, 8001, 8002, 8003]));
}

#[test]
fn the_smallest_power_of_two_that_holds_the_model_is_chosen() {
    // 3 × 85.5 GB would hold 250 GB, but vLLM needs a power of two: 4.
    let plan = auto(&h100s(8), gb(250.0)).unwrap();
    assert_eq!(gpu_sets(&plan), [vec![0, 1, 2, 3], vec![4, 5, 6, 7]]);
    assert!(plan.workers.iter().all(|w| w.tensor_parallel_size == 4));
    assert_eq!(plan.workers[0].cuda_visible_devices(), "0,1,2,3");
    let plan = auto(&h100s(8), gb(600.0)).unwrap();
    assert_eq!(gpu_sets(&plan), [(0..8).collect::<Vec<u32>>()]);
    assert_eq!(plan.workers[0].vllm_args(), ["--tensor-parallel-size", "8"]);
    // H200s hold 300 GB in pairs.
    let h200s: Vec<_> = (0..8).map(h200).collect();
    let plan = auto(&h200s, gb(300.0)).unwrap();
    assert_eq!(plan.workers.len(), 4);
    assert!(plan.workers.iter().all(|w| w.tensor_parallel_size == 2));
}

#[test]
fn odd_leftovers_are_left_out_with_a_reason() {
    let plan = auto(&h100s(3), gb(150.0)).unwrap();
    assert_eq!(gpu_sets(&plan), [[0, 1]]);
    assert_eq!(
        reasons(&plan),
        [
            "GPU 2 (NVIDIA H100 80GB HBM3) is left out: the model needs 150.0 GB, tensor-parallel groups of 2 GPUs of this kind, and this one is left over after the last full group"
        ]
    );
    let plan = auto(&h100s(7), gb(250.0)).unwrap();
    assert_eq!(gpu_sets(&plan), [[0, 1, 2, 3]]);
    assert_eq!(
        plan.left_out.iter().map(|g| g.gpu).collect::<Vec<_>>(),
        [4, 5, 6]
    );
    assert!(plan.left_out.iter().all(|g| g.reason
        == LeftOutReason::LeftOver {
            group_size: 4,
            needs_mib: gb(250.0)
        }));
}

#[test]
fn a_group_with_a_smaller_member_is_left_out() {
    // Group memory is size × the smallest member: 2 × 40 GB < 150 GB.
    let small = gpu(3, H100, "9.0", 40_000);
    let plan = auto(&[h100(0), h100(1), h100(2), small], gb(150.0)).unwrap();
    assert_eq!(gpu_sets(&plan), [[0, 1]]);
    assert_eq!(
        reasons(&plan)[0],
        "GPU 2 (NVIDIA H100 80GB HBM3) is left out: its tensor-parallel group of 2 holds 83.9 GB (2 × the group's smallest GPU), the model needs 150.0 GB"
    );
    assert_eq!(plan.left_out[1].gpu, 3);
}

#[test]
fn gpus_of_different_kinds_are_not_grouped() {
    // One H200 (150.8 GB) does not hold 200 GB, two do; two H100s
    // (171.0 GB) do not, they would need four.
    let gpus = [h100(0), h200(1), h100(2), h200(3)];
    let plan = auto(&gpus, gb(200.0)).unwrap();
    assert_eq!(gpu_sets(&plan), [[1, 3]]);
    assert_eq!(
        reasons(&plan),
        [
            "GPU 0 (NVIDIA H100 80GB HBM3) is left out: the model needs 200.0 GB, a tensor-parallel group of 4 GPUs of this kind, and only 2 are usable (GPUs of different kinds are not grouped)",
            "GPU 2 (NVIDIA H100 80GB HBM3) is left out: the model needs 200.0 GB, a tensor-parallel group of 4 GPUs of this kind, and only 2 are usable (GPUs of different kinds are not grouped)",
        ]
    );
    // Each kind is planned on its own: H200s alone, H100s in pairs.
    let gpus = [h100(0), h100(1), h200(2), h200(3)];
    let plan = auto(&gpus, gb(150.0)).unwrap();
    assert_eq!(gpu_sets(&plan), [vec![0, 1], vec![2], vec![3]]);
    assert_eq!(
        plan.workers
            .iter()
            .map(|w| w.tensor_parallel_size)
            .collect::<Vec<_>>(),
        [2, 1, 1]
    );
    // One H100 and one H200: no pair of one kind holds 160 GB.
    let err = auto(&[h100(0), h200(1)], gb(160.0)).unwrap_err();
    assert!(matches!(err, PlanError::ModelDoesNotFit { .. }));
}

#[test]
fn a_model_no_group_holds_is_an_error() {
    let err = auto(&h100s(1), gb(150.0)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "no GPU, and no tensor-parallel group of up to 8 GPUs of one kind, holds test/model (needs 150.0 GB): GPU 0 (NVIDIA H100 80GB HBM3) is left out: the model needs 150.0 GB, a tensor-parallel group of 2 GPUs of this kind, and only 1 is usable (GPUs of different kinds are not grouped); use GPUs with more memory or a smaller model"
    );
    let err = auto(&h100s(8), gb(1000.0)).unwrap_err();
    let PlanError::ModelDoesNotFit {
        needs_mib,
        left_out,
        ..
    } = &err
    else {
        panic!("{err:?}")
    };
    assert_eq!(*needs_mib, gb(1000.0));
    assert_eq!(left_out.len(), 8);
    assert_eq!(
        left_out[0].to_string(),
        "GPU 0 (NVIDIA H100 80GB HBM3) is left out: 85.5 GB, the model needs 1000.0 GB, more than 8 such GPUs hold together"
    );
    // Unqualified GPUs' reasons come along, in index order.
    let err = auto(&[rtx_4090(0), h100(1)], gb(150.0)).unwrap_err();
    let PlanError::ModelDoesNotFit { left_out, .. } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(left_out.iter().map(|g| g.gpu).collect::<Vec<_>>(), [0, 1]);
}

#[test]
fn the_catalog_and_the_fallback_set_the_requirement() {
    assert_eq!(model_requirement_mib(DEFAULT_PEARL_MODEL), gb(70.0));
    assert_eq!(
        model_requirement_mib("pearl-ai/Gemma-4-31B-it-pearl"),
        gb(80.0)
    );
    assert_eq!(
        model_requirement_mib("someone/unknown"),
        gb(FALLBACK_MIN_VRAM_GB)
    );
    // A 64 GB card does not hold the 70 GB fallback alone, so it pairs up.
    let cards: Vec<_> = (0..2)
        .map(|i| gpu(i, "NVIDIA H100 NVL 64", "9.0", 61_035))
        .collect();
    let plan = plan_workers(&cards, "someone/unknown", &WorkersSetting::Auto).unwrap();
    assert_eq!(gpu_sets(&plan), [[0, 1]]);
    let plan = plan_workers(
        &cards,
        "pearl-ai/Llama-3.1-8B-Instruct-pearl",
        &WorkersSetting::Auto,
    )
    .unwrap();
    assert_eq!(gpu_sets(&plan), [[0], [1]]);
}

// ---- explicit groups ----

#[test]
fn explicit_groups_by_index() {
    let plan = groups(&h100s(8), gb(70.0), &[&["0", "1"], &["2", "3"]]).unwrap();
    assert_eq!(gpu_sets(&plan), [[0, 1], [2, 3]]);
    assert!(plan.workers.iter().all(|w| w.tensor_parallel_size == 2));
    assert_eq!(plan.workers[1].cuda_visible_devices(), "0,1");
    assert_eq!(plan.workers[1].nvidia_visible_devices(), "2,3");
    assert_eq!(
        plan.left_out.iter().map(|g| g.gpu).collect::<Vec<_>>(),
        [4, 5, 6, 7]
    );
    assert_eq!(
        plan.left_out[0].to_string(),
        "GPU 4 (NVIDIA H100 80GB HBM3) is left out: no group in [mining.extra].workers names it"
    );
}

#[test]
fn explicit_groups_keep_their_order_and_sort_their_members() {
    let plan = groups(&h100s(4), gb(70.0), &[&["3", "2"], &["0"]]).unwrap();
    assert_eq!(gpu_sets(&plan), [vec![2, 3], vec![0]]);
    assert_eq!(
        plan.workers.iter().map(|w| w.index).collect::<Vec<_>>(),
        [0, 1]
    );
    assert_eq!(plan.workers[1].tensor_parallel_size, 1);
}

#[test]
fn explicit_groups_by_uuid_and_mixed() {
    let gpus = h100s(4);
    let plan = groups(
        &gpus,
        gb(150.0),
        &[&["GPU-0000-abcd", "1"], &["  gpu-0003-ABCD ", "2"]],
    )
    .unwrap();
    assert_eq!(gpu_sets(&plan), [[0, 1], [2, 3]]);
    assert_eq!(
        plan.workers[1].uuids,
        [Some("GPU-0002-abcd".into()), Some("GPU-0003-abcd".into())]
    );
    assert!(plan.left_out.is_empty());
}

#[test]
fn a_gpu_named_twice_is_an_error() {
    let gpus = h100s(4);
    let err = groups(&gpus, gb(70.0), &[&["0"], &["GPU-0000-abcd"]]).unwrap_err();
    assert_eq!(
        err,
        PlanError::DuplicateGpu {
            gpu: 0,
            first: "0".into(),
            second: "GPU-0000-abcd".into()
        }
    );
    assert_eq!(
        err.to_string(),
        "[mining.extra].workers names GPU 0 twice, as \"0\" and as \"GPU-0000-abcd\": a GPU can be in one group only"
    );
    let err = groups(&gpus, gb(70.0), &[&["1", "1"]]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "[mining.extra].workers names GPU \"1\" twice: a GPU can be in one group only"
    );
}

#[test]
fn an_unknown_gpu_is_an_error_naming_the_known_ones() {
    let gpus = [h100(0), h100(2)];
    let err = groups(&gpus, gb(70.0), &[&["0"], &["1"]]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "[mining.extra].workers names GPU \"1\", which is not among the GPUs this provider may use (0 (GPU-0000-abcd), 2 (GPU-0002-abcd)): name GPUs by NVML index or UUID from that list, or add it to [mining.extra].cuda_visible_devices"
    );
    let err = groups(&gpus, gb(70.0), &[&["GPU-ffff"]]).unwrap_err();
    assert!(matches!(err, PlanError::UnknownGpu { ref id, .. } if id == "GPU-ffff"));
    // A GPU without a UUID is known by its index only.
    let mut plain = h100(5);
    plain.uuid = None;
    let err = groups(&[plain], gb(70.0), &[&["7"]]).unwrap_err();
    assert!(err.to_string().contains("may use (5)"));
}

#[test]
fn a_group_size_must_be_a_power_of_two() {
    let err = groups(&h100s(8), gb(70.0), &[&["0", "1", "2"]]).unwrap_err();
    assert_eq!(
        err,
        PlanError::GroupSizeNotPowerOfTwo {
            group: vec!["0".into(), "1".into(), "2".into()],
            size: 3
        }
    );
    assert_eq!(
        err.to_string(),
        "[mining.extra].workers: group [\"0\", \"1\", \"2\"] has 3 GPUs; vLLM's tensor parallelism needs a power of two (1, 2, 4 or 8): split it or drop GPUs from it"
    );
    assert!(groups(&h100s(8), gb(70.0), &[&["0", "1", "2", "3", "4", "5"]]).is_err());
}

#[test]
fn a_group_too_small_for_the_model_is_an_error() {
    let err = groups(&h100s(2), gb(150.0), &[&["0"], &["1"]]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "[mining.extra].workers: group [\"0\"] holds 85.5 GB (1 × its smallest GPU), and test/model needs 150.0 GB: make the group larger (2, 4 or 8 GPUs) or use GPUs with more memory"
    );
    // Size × the smallest member: an H100 beside an H200 counts as 2 × 85.5 GB.
    assert!(matches!(
        groups(&[h100(0), h200(1)], gb(200.0), &[&["0", "1"]]),
        Err(PlanError::GroupTooSmall {
            group_memory_mib: 163_118,
            ..
        })
    ));
    // Mixed kinds are the user's choice when they hold the model.
    let plan = groups(&[h100(0), h200(1)], gb(150.0), &[&["0", "1"]]).unwrap();
    assert_eq!(gpu_sets(&plan), [[0, 1]]);
}

#[test]
fn a_group_member_that_does_not_qualify_is_an_error() {
    let err = groups(&[h100(0), rtx_4090(1)], gb(24.0), &[&["0", "1"]]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "[mining.extra].workers: group [\"0\", \"1\"] has GPU 1 (NVIDIA GeForce RTX 4090), which cannot mine: compute capability 8.9, Pearl needs 9.0 or newer; remove it from the group"
    );
}

#[test]
fn empty_groups_are_errors() {
    let err =
        plan_workers_needing(&h100s(1), MODEL, 1, &WorkersSetting::Groups(vec![])).unwrap_err();
    assert_eq!(err, PlanError::NoGroups);
    assert!(err.to_string().contains("list at least one"));
    let err = groups(&h100s(2), gb(70.0), &[&["0"], &[]]).unwrap_err();
    assert_eq!(err, PlanError::EmptyGroup { group: 2 });
}

// ---- single ----

#[test]
fn single_is_one_worker_with_every_gpu_and_no_tensor_parallelism() {
    let plan = plan_workers(&h100s(4), DEFAULT_PEARL_MODEL, &WorkersSetting::Single).unwrap();
    assert_eq!(gpu_sets(&plan), [[0, 1, 2, 3]]);
    let worker = &plan.workers[0];
    assert_eq!(worker.tensor_parallel_size, 1);
    assert!(worker.vllm_args().is_empty());
    assert_eq!(worker.nvidia_visible_devices(), "0,1,2,3");
    assert_eq!(worker.cuda_visible_devices(), "0,1,2,3");
    assert!(plan.left_out.is_empty());
}

#[test]
fn single_judges_every_gpu_as_detect_does() {
    let gpus = [h100(0), rtx_4090(1), h100(2)];
    let err = plan_workers(&gpus, DEFAULT_PEARL_MODEL, &WorkersSetting::Single).unwrap_err();
    assert_eq!(
        err.to_string(),
        "[mining.extra].workers = \"single\" gives every GPU to one vLLM, so every GPU must mine on its own: GPU 1 (NVIDIA GeForce RTX 4090): compute capability 8.9, Pearl needs 9.0 or newer; leave it out with [mining.extra].cuda_visible_devices = \"0,2\" (the GPUs that qualify), or set [mining.extra].workers = \"auto\" to leave such GPUs out by themselves"
    );
    // The most basic problem first: GPU 0 is too small, GPU 1 is not Hopper.
    let small = gpu(0, H100, "9.0", 40_000);
    let err = plan_workers_needing(
        &[small, rtx_4090(1)],
        MODEL,
        gb(70.0),
        &WorkersSetting::Single,
    )
    .unwrap_err();
    let PlanError::SingleGpuCannotMine { problem, usable } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(problem.gpu, 1);
    assert!(usable.is_empty());
    assert!(err.to_string().ends_with("no GPU here qualifies"));
    // A model larger than one GPU cannot be mined in single mode.
    let err =
        plan_workers_needing(&h100s(2), MODEL, gb(150.0), &WorkersSetting::Single).unwrap_err();
    assert!(
        err.to_string()
            .contains("GPU 0 (NVIDIA H100 80GB HBM3): 85.5 GB, the model needs 150.0 GB")
    );
}

// ---- ports ----

#[test]
fn ports_are_base_plus_worker_and_never_overflow() {
    assert_eq!(worker_port(8000, 0), Ok(8000));
    assert_eq!(worker_port(8000, 7), Ok(8007));
    assert_eq!(worker_port(65_535, 0), Ok(65_535));
    assert_eq!(
        worker_port(65_535, 1),
        Err(PortError {
            base: 65_535,
            worker: 1
        })
    );
    assert_eq!(
        worker_port(65_530, 7).unwrap_err().to_string(),
        "the vLLM port of worker 7 would be 65530 + 7 = 65537, past the last port, 65535: set [mining.extra].vllm_port to 65528 or lower (each worker takes the next port)"
    );
    assert!(worker_port(1, u32::MAX).is_err());
    assert!(
        worker_port(0, u32::MAX)
            .unwrap_err()
            .to_string()
            .ends_with("run fewer workers")
    );
    let plan = auto(&h100s(8), gb(70.0)).unwrap();
    assert_eq!(
        plan.ports(65_530),
        Err(PortError {
            base: 65_530,
            worker: 6
        })
    );
    assert_eq!(plan.ports(65_528).unwrap().last(), Some(&65_535));
}

// ---- the setting ----

fn text(s: &str) -> SettingValue {
    SettingValue::Text(s.into())
}

fn list(items: Vec<SettingValue>) -> SettingValue {
    SettingValue::List(items)
}

#[test]
fn the_setting_parses_words() {
    assert_eq!(WorkersSetting::default(), WorkersSetting::Auto);
    assert_eq!(
        WorkersSetting::parse(&text("auto")),
        Ok(WorkersSetting::Auto)
    );
    assert_eq!(
        WorkersSetting::parse(&text(" AUTO ")),
        Ok(WorkersSetting::Auto)
    );
    assert_eq!(WorkersSetting::parse(&text("")), Ok(WorkersSetting::Auto));
    assert_eq!(
        WorkersSetting::parse(&text("single")),
        Ok(WorkersSetting::Single)
    );
    assert_eq!(
        WorkersSetting::from_text("Single"),
        Ok(WorkersSetting::Single)
    );
}

#[test]
fn the_setting_parses_groups_of_strings_and_integers() {
    let value = list(vec![
        list(vec![text("0"), SettingValue::Integer(1)]),
        list(vec![text(" GPU-0002-abcd "), text("MIG-1/2/3")]),
    ]);
    let setting = WorkersSetting::parse(&value).unwrap();
    assert_eq!(
        setting,
        WorkersSetting::Groups(vec![
            vec!["0".into(), "1".into()],
            vec!["GPU-0002-abcd".into(), "MIG-1/2/3".into()],
        ])
    );
    assert_eq!(
        setting.to_string(),
        "[[\"0\", \"1\"], [\"GPU-0002-abcd\", \"MIG-1/2/3\"]]"
    );
    assert_eq!(WorkersSetting::Single.to_string(), "\"single\"");
    // A parsed setting plans.
    let value = list(vec![
        list(vec![text("0"), SettingValue::Integer(1)]),
        list(vec![text("GPU-0002-abcd"), SettingValue::Integer(3)]),
    ]);
    let setting = WorkersSetting::parse(&value).unwrap();
    let plan = plan_workers_needing(&h100s(4), MODEL, gb(150.0), &setting).unwrap();
    assert_eq!(gpu_sets(&plan), [[0, 1], [2, 3]]);
}

#[test]
fn the_setting_explains_what_it_accepts() {
    let err = |value: SettingValue| WorkersSetting::parse(&value).unwrap_err();
    let e = err(text("many"));
    assert_eq!(
        e,
        WorkersSettingError::UnknownWord {
            word: "many".into()
        }
    );
    assert!(e.to_string().starts_with(
        "[mining.extra].workers = \"many\" is not understood; it must be \"auto\" (one worker per GPU"
    ));
    assert!(e.to_string().contains("\"single\""));
    assert!(e.to_string().contains("[[\"0\"], [\"1\"]]"));

    let e = err(SettingValue::Boolean(true));
    assert_eq!(e, WorkersSettingError::WrongType { found: "a boolean" });
    assert!(
        e.to_string()
            .starts_with("[mining.extra].workers is a boolean; it must be \"auto\"")
    );
    assert_eq!(
        err(SettingValue::Integer(2)),
        WorkersSettingError::WrongType {
            found: "an integer"
        }
    );
    assert_eq!(
        err(SettingValue::Table),
        WorkersSettingError::WrongType { found: "a table" }
    );

    assert_eq!(err(list(vec![])), WorkersSettingError::NoGroups);
    assert!(err(list(vec![])).to_string().contains("empty list"));

    // A flat list is the likely slip.
    let e = err(list(vec![text("0"), text("1")]));
    assert_eq!(
        e.to_string(),
        "[mining.extra].workers: group 1 is a string (\"0\"), not a list of GPUs; write each group as a list: [[\"0\"], [\"1\"]] for one worker per GPU, [[\"0\", \"1\"]] for one worker on both"
    );
    assert_eq!(
        err(list(vec![list(vec![text("0")]), list(vec![])])),
        WorkersSettingError::EmptyGroup { group: 2 }
    );
    let e = err(list(vec![list(vec![text("zero")])]));
    assert_eq!(
        e.to_string(),
        "[mining.extra].workers: group 1 names \"zero\", which is neither an NVML index such as \"0\" nor a GPU UUID such as \"GPU-…\""
    );
    assert_eq!(
        err(list(vec![list(vec![SettingValue::Integer(-1)])])),
        WorkersSettingError::BadMember {
            group: 1,
            member: "-1".into()
        }
    );
    assert_eq!(
        err(list(vec![list(vec![SettingValue::Float(1.0)])])),
        WorkersSettingError::BadMember {
            group: 1,
            member: "1.0".into()
        }
    );
    assert_eq!(
        err(list(vec![list(vec![text("GPU-")])])),
        WorkersSettingError::BadMember {
            group: 1,
            member: "\"GPU-\"".into()
        }
    );
    assert_eq!(
        err(list(vec![list(vec![list(vec![])])])),
        WorkersSettingError::BadMember {
            group: 1,
            member: "a list".into()
        }
    );
}
