// The KLD measurer (see kld_measurer.cpp for the method).
#pragma once

#include <memory>

#include "quant/automix.h"
#include "quant/model.h"

namespace quant::automix_internal {

// The tokens per chunk the measurer cuts the calibration text into: options.ctx, or when 0, 512 or the model's
// training context when that is smaller. The importance matrix computed from the same text uses it too.
int64_t calibration_context(const KldMeasurerOptions& options, const ModelHyperparameters& hparams);

class KldMeasurer final : public SensitivityMeasurer {
 public:
  explicit KldMeasurer(const KldMeasurerOptions& options);
  ~KldMeasurer() override;

  std::string id() const override;
  std::string unit() const override { return "KLD (nats)"; }
  Result<SensitivityTable> measure(const MeasureContext& context) override;
  Result<std::optional<MixScore>> measure_mix(const MeasureContext& mix) override;

 private:
  struct Calibration;

  // Opens the model, reads and cuts the text, runs the unquantized model once (kept for every later pass).
  Status prepare(const MeasureContext& context);
  // Mean KLD (above the base's own rounding floor) of the logits of `final_states` against the base.
  Result<double> kld(const Model& model, const HiddenStates& final_states, const EvalHooks& hooks,
                     double* same_top = nullptr) const;
  // The whole model with these weights replaced.
  Result<double> kld_with(std::span<const WeightOverride> overrides, double* same_top = nullptr) const;

  KldMeasurerOptions options_;
  std::unique_ptr<SensitivityMeasurer> proxy_;
  std::unique_ptr<Calibration> calibration_;
};

}  // namespace quant::automix_internal
