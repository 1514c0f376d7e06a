"""The ablation the paper lacks: the same U-Net generator trained on L1 alone, no discriminator."""

from cgan_colorization.networks import losses
from cgan_colorization.networks.models import build_generator
from cgan_colorization.pretexts import gan
from cgan_colorization.pretexts.pretext import PretextModel, compiled, unet_options


class L1Colorizer(PretextModel):
    """The generator trained with L1 on ab alone."""

    loss_names = ("g_l1",)
    optimized = "g_l1"
    monitor = "val_g_l1"
    saves_keras_model = True

    @property
    def generator(self):
        return self.net

    def compute_losses(self, gray, ab, training):
        fake_ab = self.net(gray, training=training)
        return {"g_l1": losses.l1_loss(ab, fake_ab, losses.global_batch_size(gray))}, fake_ab


def build(config, strategy=None, train_ds=None, run_dir=None):
    """The generator alone with Adam, compiled and built."""
    return compiled(config, strategy, lambda sync: L1Colorizer(
        build_generator(config.image_size, config.base_filters, synchronized_bn=sync, **unet_options(config))))


def load(entry, config, run_dir, weights, inference_dropout=False):
    """The trained generator (L -> ab), as the GAN's."""
    return gan.load(entry, config, run_dir, weights, inference_dropout)
