//! The current contract, `openjarvis:mining@0.2.0` (`wit/types.wit`): the
//! one the host implements.

wasmtime::component::bindgen!({
    path: "../wit",
    world: "mining-provider",
    additional_derives: [PartialEq],
});
