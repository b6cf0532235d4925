// SPDX-License-Identifier: MPL-2.0
//! How the flow returns of one frame pushed on several outputs combine into
//! the task's (as `tee` combines its branches').

/// The flow of a frame pushed on several pads, as `tee` combines them: a
/// fatal return (flushing, an error) wins; NOT_LINKED or EOS only when every
/// pad returned it (then the first of them); otherwise OK.
pub fn combine_flows(
    results: &[Result<gst::FlowSuccess, gst::FlowError>],
) -> Result<gst::FlowSuccess, gst::FlowError> {
    let benign =
        |flow: &gst::FlowError| matches!(flow, gst::FlowError::NotLinked | gst::FlowError::Eos);
    if let Some(fatal) = results.iter().filter_map(|r| r.err()).find(|f| !benign(f)) {
        return Err(fatal);
    }
    if results.iter().any(|r| r.is_ok()) || results.is_empty() {
        return Ok(gst::FlowSuccess::Ok);
    }
    let all_eos = results.iter().all(|r| *r == Err(gst::FlowError::Eos));
    Err(if all_eos {
        gst::FlowError::Eos
    } else {
        gst::FlowError::NotLinked
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use gst::FlowError::{Eos, Error, Flushing, NotLinked};

    #[test]
    fn flows_combine_as_tee_does() {
        let ok = Ok(gst::FlowSuccess::Ok);
        assert_eq!(combine_flows(&[ok, Err(NotLinked)]), ok);
        assert_eq!(
            combine_flows(&[Err(NotLinked), Err(NotLinked)]),
            Err(NotLinked)
        );
        assert_eq!(combine_flows(&[Err(Eos), Err(Eos)]), Err(Eos));
        assert_eq!(combine_flows(&[Err(Eos), Err(NotLinked)]), Err(NotLinked));
        assert_eq!(combine_flows(&[ok, Err(Flushing)]), Err(Flushing));
        assert_eq!(combine_flows(&[Err(NotLinked), Err(Error)]), Err(Error));
        assert_eq!(combine_flows(&[ok, Err(Eos)]), ok);
    }
}
