"""The networks and their losses: the U-Net and MobileNetV2 trunks with their heads (`backbones`), the
pix2pix generator and 70 x 70 PatchGAN discriminator (`models`), the cGAN objective (`losses`) and the
BatchNorm tools for short schedules (`batchnorm`)."""
