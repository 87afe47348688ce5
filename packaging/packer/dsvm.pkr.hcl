# Builds a custom Data Science VM image with dsvm-agent baked in.
#
#   make deb
#   packer init packaging/packer
#   packer build -var subscription_id=... -var resource_group=rg-images \
#     -var deb=build/dsvm-agent_0.1.0_amd64.deb packaging/packer
#
# The image carries the agent and nothing of any VM's identity: no join, no
# keytab, no share credentials. Each VM made from it gets its config from
# cloud-init (packaging/cloud-init/user-data.example.yaml) and joins on its
# own first boot.

packer {
  required_plugins {
    azure = {
      source  = "github.com/hashicorp/azure"
      version = ">= 2.0.0"
    }
  }
}

variable "subscription_id" {
  type = string
}

variable "resource_group" {
  type        = string
  description = "Resource group that receives the managed image."
}

variable "location" {
  type    = string
  default = "westeurope"
}

variable "image_name" {
  type    = string
  default = "dsvm-agent-ubuntu-2204"
}

variable "deb" {
  type        = string
  description = "Path of the dsvm-agent .deb built by `make deb`."
}

variable "vm_size" {
  type    = string
  default = "Standard_D4s_v5"
}

source "azure-arm" "dsvm" {
  # Azure CLI login of whoever runs the build (or a pipeline's federated
  # identity); no client secret in this file.
  use_azure_cli_auth = true
  subscription_id    = var.subscription_id

  # The Data Science Virtual Machine for Linux (Ubuntu 22.04).
  image_publisher = "microsoft-dsvm"
  image_offer     = "ubuntu-2204"
  image_sku       = "2204-gen2"
  os_type         = "Linux"

  location                          = var.location
  vm_size                           = var.vm_size
  managed_image_resource_group_name = var.resource_group
  managed_image_name                = var.image_name

  azure_tags = {
    purpose = "dsvm-agent image"
  }
}

build {
  sources = ["source.azure-arm.dsvm"]

  provisioner "file" {
    source      = var.deb
    destination = "/tmp/dsvm-agent.deb"
  }

  provisioner "shell" {
    execute_command = "chmod +x {{ .Path }}; sudo sh -eu {{ .Path }}"
    inline = [
      # apt-get resolves the package's Depends (adcli, sssd, cifs-utils, ...).
      # The package enables its unit but does not start it: nothing joins
      # during the build.
      "apt-get update",
      "DEBIAN_FRONTEND=noninteractive apt-get install -y /tmp/dsvm-agent.deb",
      "rm -f /tmp/dsvm-agent.deb",
      "dsvm-agent version",
    ]
  }

  provisioner "shell" {
    execute_command = "chmod +x {{ .Path }}; sudo sh -eu {{ .Path }}"
    # Last: stop the daemon (started if someone tried the image by hand), then
    # remove what the agent may have left (a join and its keytab, the share's
    # mount units and credentials, the state) so the captured image has no
    # identity, then let the Azure agent generalize the VM. deprovision stops
    # the daemon as well; the explicit stop puts it in the build log before
    # anything is removed. --yes: there is no terminal to confirm on.
    #
    # /etc/dsvm-agent/config.yaml stays on purpose: an image may carry its
    # config (each VM then joins with it), or cloud-init writes it at first
    # boot. If one was only put here to try the image, add
    # "rm -f /etc/dsvm-agent/config.yaml" after deprovision (and any secret
    # file it names: an image should reference Key Vault instead).
    inline = [
      "systemctl stop dsvm-agent.service",
      "dsvm-agent deprovision --yes",
      "/usr/sbin/waagent -deprovision+user -force",
      "export HISTSIZE=0",
      "sync",
    ]
    skip_clean = true
  }
}
