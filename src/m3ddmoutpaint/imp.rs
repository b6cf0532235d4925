// SPDX-License-Identifier: MPL-2.0
/**
 * SECTION:element-m3ddmoutpaint
 *
 * Changes a video's aspect ratio (`aspect`, the output's display aspect) by
 * generating the area the new ratio adds with M3DDM, the Hierarchical Masked 3D
 * Diffusion Model for Video Outpainting (arXiv 2309.02119), run by ONNX Runtime.
 * The source keeps its full resolution and every source pixel reaches the
 * output bit-exact; only the new area is generated, at the model canvas
 * (256 for the published model), upscaled and feathered at the seam into the
 * new area. `fill-mode=blur|color` fill it without a model, frame by frame.
 *
 * The model sees `lookahead` frames at once, so in outpaint mode the element
 * holds up to `lookahead` input buffers (memory: about lookahead × frame size,
 * e.g. 226 × 6 MB for 1080p RGB; lower `lookahead` to hold less) and its
 * latency is lookahead frames at the stream's framerate (30 fps assumed for a
 * variable framerate) plus the processing time of a chunk. Parallel branches
 * need queues that hold that much (see the example).
 *
 * ## Example launch line
 * |[
 * gst-launch-1.0 filesrc location=in.mp4 ! decodebin ! videoconvert ! \
 *   m3ddmoutpaint aspect=9/16 model-path=models/m3ddm ! videoconvert ! x264enc ! mp4mux ! filesink location=out.mp4
 * ]|
 *
 * Since: 0.1
 */
use std::sync::{Arc, LazyLock, Mutex};

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;

use super::CAT;
use super::errors::engine_error_message;
use super::generator;
use super::orientation::Upright;
use super::planned;
use super::security_properties;
use super::settings::{PROPERTIES, Settings};
use super::state::{DrainPoint, Item, RunContext, Shared, State};
use super::task::SrcTask;
use crate::engine::Model;

mod input_caps;
mod orientation;
mod pads;
mod queries;

pub struct M3ddmOutpaint {
    srcpad: gst::Pad,
    sinkpad: gst::Pad,
    settings: Mutex<Settings>,
    /// The state the sink side, the task and the generator share.
    shared: Arc<Shared>,
    /// The model of the settings at the last READY, one per device (kept until NULL).
    model: Mutex<Vec<Arc<Model>>>,
    /// The orientation tag's method, and the frames' rotator (`imp/orientation.rs`).
    upright: Mutex<Upright>,
}

impl M3ddmOutpaint {
    fn sink_chain(&self, buffer: gst::Buffer) -> Result<gst::FlowSuccess, gst::FlowError> {
        let scaler = {
            let state = self.shared.lock();
            state.srcresult?;
            state.scaler.clone()
        };
        let Some(scaler) = scaler else {
            gst::element_imp_error!(
                self,
                gst::CoreError::Negotiation,
                ("a buffer arrived before any caps")
            );
            return Err(gst::FlowError::NotNegotiated);
        };
        let buffer = self.upright_buffer(buffer)?;
        let scaled = scaler.scale(&buffer).map_err(|err| {
            gst::element_imp_error!(self, gst::StreamError::Format, ("{err}"));
            gst::FlowError::Error
        })?;
        let mut state = self.shared.lock();
        state.srcresult?;
        gst::trace!(CAT, imp = self, "queueing buffer {:?}", buffer.pts());
        state.queue.push_back(Item::Frame {
            buffer,
            content: scaled.content,
            cut_image: scaled.cut_image,
            arrived: std::time::Instant::now(),
        });
        state.frames_held += 1;
        state.stats.frames_in += 1;
        state.last_activity = std::time::Instant::now();
        self.shared.notify();
        while state.srcresult.is_ok() && state.frames_held >= state.max_held {
            state = self.shared.wait(state, None);
        }
        state.srcresult
    }

    fn sink_event(&self, pad: &gst::Pad, event: gst::Event) -> bool {
        use gst::EventView;
        gst::log!(CAT, obj = pad, "handling event {event:?}");
        match event.view() {
            EventView::FlushStart(_) => {
                let forwarded = self.push_on_every_output(event);
                self.set_flushing();
                let _ = self.srcpad.pause_task();
                forwarded
            }
            EventView::FlushStop(_) => {
                self.flush_and_restart();
                self.push_on_every_output(event)
            }
            EventView::Caps(caps) => {
                let caps = caps.caps_owned();
                self.sink_caps(&caps)
            }
            EventView::Tag(_) => self.sink_tag(event),
            EventView::StreamStart(_) => {
                self.upright.lock().unwrap().method = None;
                // A new stream after EOS flows again, once that EOS has left.
                if self.wait_for_eos_out() {
                    self.flush_and_restart();
                }
                self.enqueue(Item::Drain(DrainPoint::Event(event)))
            }
            EventView::Segment(_) | EventView::Eos(_) => {
                self.enqueue(Item::Drain(DrainPoint::Event(event)))
            }
            _ if event.is_serialized() => self.enqueue(Item::Event(event)),
            _ => gst::Pad::event_default(pad, Some(&*self.obj()), event),
        }
    }

    /// Waits until an EOS still queued has left (its frames before it); true
    /// when the stream ended with EOS, false when it flows or stopped otherwise.
    fn wait_for_eos_out(&self) -> bool {
        let mut state = self.shared.lock();
        loop {
            match state.srcresult {
                Err(gst::FlowError::Eos) => return true,
                Err(_) => return false,
                Ok(_) if !state.eos_pending => return false,
                Ok(_) => state = self.shared.wait(state, None),
            }
        }
    }

    /// Pushes a non-serialized event on every source pad; true when one took it.
    fn push_on_every_output(&self, event: gst::Event) -> bool {
        let pads = self.obj().src_pads();
        let pushed: Vec<bool> = pads
            .iter()
            .map(|pad| pad.push_event(event.clone()))
            .collect();
        pushed.contains(&true)
    }

    fn enqueue(&self, item: Item) -> bool {
        let mut state = self.shared.lock();
        if state.srcresult == Err(gst::FlowError::Flushing) {
            return false;
        }
        if matches!(&item, Item::Drain(DrainPoint::Event(event)) if event.type_() == gst::EventType::Eos)
        {
            state.eos_pending = true;
        }
        state.queue.push_back(item);
        self.shared.notify();
        true
    }

    /// Stops everything that waits: the chain, the task, a chunk in flight.
    fn set_flushing(&self) {
        self.shared.lock().set_flushing();
        self.shared.notify();
    }

    /// FLUSH_STOP (or a new stream after EOS): the task stopped, every held
    /// frame dropped, the stream flowing again with a new task.
    fn flush_and_restart(&self) {
        self.set_flushing();
        if let Err(err) = self.srcpad.stop_task() {
            gst::warning!(CAT, imp = self, "cannot stop the streaming task: {err}");
        }
        self.shared.lock().flush();
        self.shared.notify();
        if self.srcpad.is_active()
            && let Err(err) = self.start_task()
        {
            gst::element_imp_error!(
                self,
                gst::CoreError::Failed,
                ("cannot restart the streaming task: {err}")
            );
        }
    }

    fn start_task(&self) -> Result<(), glib::BoolError> {
        SrcTask::start(
            self.obj().upcast_ref(),
            &self.srcpad,
            &self.sinkpad,
            &self.shared,
        )
    }

    fn src_activatemode(&self, active: bool) -> Result<(), gst::LoggableError> {
        if active {
            self.shared.lock().srcresult = Ok(gst::FlowSuccess::Ok);
            self.start_task()
                .map_err(|err| gst::loggable_error!(CAT, "cannot start the streaming task: {err}"))
        } else {
            self.set_flushing();
            self.srcpad
                .stop_task()
                .map_err(|err| gst::loggable_error!(CAT, "cannot stop the streaming task: {err}"))
        }
    }

    /// The settings checked, the model the fill mode needs loaded, and the
    /// memory of `lookahead` held frames at the model's canvas checked: at
    /// NULL→READY and again at every READY→PAUSED.
    fn checked_run(&self) -> Result<RunContext, gst::ErrorMessage> {
        let settings = self.settings.lock().unwrap().clone();
        settings
            .validate()
            .map_err(|err| gst::error_msg!(gst::LibraryError::Settings, ("{err}")))?;
        let models = self.ensure_model(&settings)?;
        let settings_error = |err| gst::error_msg!(gst::LibraryError::Settings, ("{err}"));
        let strides = RunContext::strides_for(&settings, &models).map_err(settings_error)?;
        let plan = planned::load_plan(&settings, &models, &strides).map_err(settings_error)?;
        gst::debug!(CAT, imp = self, "strides {strides}");
        let mut run = RunContext {
            settings,
            models,
            plan,
            strides,
            chunk_estimate: None,
        };
        run.check_memory(0)
            .map_err(|err| gst::error_msg!(gst::ResourceError::NoSpaceLeft, ("{err}")))?;
        run.chunk_estimate = run.estimate_chunk().unwrap_or_else(|err| {
            gst::warning!(CAT, imp = self, "cannot estimate a chunk's time: {err}");
            None
        });
        gst::debug!(CAT, imp = self, "chunk estimate {:?}", run.chunk_estimate);
        Ok(run)
    }

    /// The models for `settings`, one per device; none when the fill needs no
    /// model. `Model::shared` checks the directory again on every call (its
    /// manifest and file hashes), so a directory changed or removed since the
    /// last load is reloaded or refused here, while running streams keep theirs.
    fn ensure_model(&self, settings: &Settings) -> Result<Vec<Arc<Model>>, gst::ErrorMessage> {
        let mut loaded = self.model.lock().unwrap();
        let Some(options) = settings.model_options() else {
            loaded.clear();
            return Ok(Vec::new());
        };
        let options =
            options.map_err(|err| gst::error_msg!(gst::ResourceError::NotFound, ("{err}")))?;
        if let Some(first) = options.first() {
            security_properties::warn_unencrypted(self.obj().upcast_ref(), &first.remote.servers);
        }
        let mut models = Vec::with_capacity(options.len());
        for device in &options {
            gst::info!(
                CAT,
                imp = self,
                "loading or checking the model in {} for device {}",
                device.model_dir.display(),
                device.session.device_id
            );
            let model = Model::shared(device).map_err(|err| engine_error_message(&err))?;
            gst::info!(
                CAT,
                imp = self,
                "model loaded: canvas {}, on {}",
                model.canvas(),
                model.placement().label()
            );
            models.push(model);
        }
        loaded.clone_from(&models);
        Ok(models)
    }

    /// READY→PAUSED: the settings and model this run uses, and its generator.
    fn start(&self) -> Result<(), gst::ErrorMessage> {
        let run = Arc::new(self.checked_run()?);
        let generator =
            generator::spawn(self.shared.clone(), self.obj().upcast_ref()).map_err(|err| {
                gst::error_msg!(
                    gst::CoreError::Failed,
                    ("cannot start the generator thread: {err}")
                )
            })?;
        let mut state = self.shared.lock();
        *state = State::started(run);
        state.generator_thread = Some(generator);
        Ok(())
    }

    /// After PAUSED→READY: the generator ended, every frame, item and configuration dropped.
    fn stop(&self) {
        let generator = {
            let mut state = self.shared.lock();
            state.set_flushing();
            state.generator.shutdown = true;
            state.generator_thread.take()
        };
        self.shared.notify();
        if let Some(generator) = generator
            && generator.join().is_err()
        {
            gst::error!(CAT, imp = self, "the generator thread panicked");
        }
        *self.shared.lock() = State::default();
    }
}

#[glib::object_subclass]
impl ObjectSubclass for M3ddmOutpaint {
    const NAME: &'static str = "GstM3ddmOutpaint";
    type Type = super::M3ddmOutpaint;
    type ParentType = gst::Element;
    type Interfaces = (gst::ChildProxy,);

    fn with_class(klass: &Self::Class) -> Self {
        let sinkpad = gst::Pad::builder_from_template(&klass.pad_template("sink").unwrap())
            .chain_function(|_pad, parent, buffer| {
                M3ddmOutpaint::catch_panic_pad_function(
                    parent,
                    || Err(gst::FlowError::Error),
                    |imp| imp.sink_chain(buffer),
                )
            })
            .event_function(|pad, parent, event| {
                M3ddmOutpaint::catch_panic_pad_function(
                    parent,
                    || false,
                    |imp| imp.sink_event(pad, event),
                )
            })
            .query_function(|pad, parent, query| {
                M3ddmOutpaint::catch_panic_pad_function(
                    parent,
                    || false,
                    |imp| imp.sink_query(pad, query),
                )
            })
            .build();
        let srcpad = M3ddmOutpaint::output_pad_builder(gst::Pad::builder_from_template(
            &klass.pad_template("src").unwrap(),
        ))
        .activatemode_function(|_pad, parent, mode, active| {
            M3ddmOutpaint::catch_panic_pad_function(
                parent,
                || {
                    Err(gst::loggable_error!(
                        CAT,
                        "panic while (de)activating the src pad"
                    ))
                },
                |imp| match mode {
                    gst::PadMode::Push => imp.src_activatemode(active),
                    _ => Err(gst::loggable_error!(CAT, "only push mode is supported")),
                },
            )
        })
        .build();
        M3ddmOutpaint {
            srcpad,
            sinkpad,
            settings: Mutex::new(Settings::default()),
            shared: Arc::new(Shared::default()),
            model: Mutex::new(Vec::new()),
            upright: Mutex::new(Upright::default()),
        }
    }
}

impl ObjectImpl for M3ddmOutpaint {
    fn properties() -> &'static [glib::ParamSpec] {
        PROPERTIES.as_ref()
    }

    fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
        gst::info!(CAT, imp = self, "setting {} to {value:?}", pspec.name());
        self.settings.lock().unwrap().set_property(value, pspec);
        if pspec.name() == "lookahead" {
            let _ = self
                .obj()
                .post_message(gst::message::Latency::builder().src(&*self.obj()).build());
        }
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        match pspec.name() {
            "stats" => self.shared.lock().stats_structure().to_value(),
            _ => self.settings.lock().unwrap().property(pspec),
        }
    }

    fn constructed(&self) {
        self.parent_constructed();
        let obj = self.obj();
        obj.add_pad(&self.sinkpad).unwrap();
        obj.add_pad(&self.srcpad).unwrap();
    }
}

impl GstObjectImpl for M3ddmOutpaint {}

impl ElementImpl for M3ddmOutpaint {
    fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
        static METADATA: LazyLock<gst::subclass::ElementMetadata> = LazyLock::new(|| {
            gst::subclass::ElementMetadata::new(
                "M3DDM video outpainting",
                "Filter/Effect/Video",
                "Changes the aspect ratio by generating the missing area with the M3DDM diffusion model \
                 (or a blurred or flat fill), keeping every source pixel",
                "m3ddmoutpaint developers",
            )
        });
        Some(&*METADATA)
    }

    fn pad_templates() -> &'static [gst::PadTemplate] {
        pads::templates()
    }

    fn request_new_pad(
        &self,
        template: &gst::PadTemplate,
        name: Option<&str>,
        _caps: Option<&gst::Caps>,
    ) -> Option<gst::Pad> {
        self.request_output_pad(template, name)
    }

    fn release_pad(&self, pad: &gst::Pad) {
        self.release_output_pad(pad);
    }

    fn change_state(
        &self,
        transition: gst::StateChange,
    ) -> Result<gst::StateChangeSuccess, gst::StateChangeError> {
        gst::debug!(CAT, imp = self, "changing state {transition:?}");
        let prepared = match transition {
            gst::StateChange::NullToReady => self.checked_run().map(|_| ()),
            gst::StateChange::ReadyToPaused => self.start(),
            gst::StateChange::PausedToReady => {
                self.set_flushing();
                Ok(())
            }
            _ => Ok(()),
        };
        if let Err(err) = prepared {
            gst::error!(CAT, imp = self, "{transition:?} failed: {err:?}");
            self.post_error_message(err);
            return Err(gst::StateChangeError);
        }
        let success = match self.parent_change_state(transition) {
            Ok(success) => success,
            Err(err) => {
                if transition == gst::StateChange::ReadyToPaused {
                    self.stop();
                }
                return Err(err);
            }
        };
        match transition {
            gst::StateChange::PausedToReady => self.stop(),
            gst::StateChange::ReadyToNull => self.model.lock().unwrap().clear(),
            _ => {}
        }
        Ok(success)
    }
}
